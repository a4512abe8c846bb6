#pragma once
// Files embedded in the library at build time (src/report/assets.S.in): the charting library from
// npm, the report's HTML template, script and styles, and the figure script.
#include <string_view>

namespace ihlab::assets {

std::string_view plotly_js();    // plotly.js, cartesian bundle (web/package-lock.json pins it)
std::string_view report_html();  // template with @TITLE@, @CSS@, @DATA@, @PLOTLY@, @APP@
std::string_view report_js();
std::string_view report_css();
std::string_view figures_py();  // matplotlib script: python3 - DIR writes DIR/figures/

}  // namespace ihlab::assets
