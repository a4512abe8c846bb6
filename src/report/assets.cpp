#include "report/assets.h"

// Symbols defined by the assembler file CMake configures from assets.S.in.
extern "C" {
extern const char ihlab_asset_plotly[], ihlab_asset_plotly_end[];
extern const char ihlab_asset_report_js[], ihlab_asset_report_js_end[];
extern const char ihlab_asset_report_css[], ihlab_asset_report_css_end[];
extern const char ihlab_asset_report_html[], ihlab_asset_report_html_end[];
extern const char ihlab_asset_figures_py[], ihlab_asset_figures_py_end[];
}

namespace ihlab::assets {

namespace {
std::string_view view(const char* begin, const char* end) { return {begin, size_t(end - begin)}; }
}  // namespace

std::string_view plotly_js() { return view(ihlab_asset_plotly, ihlab_asset_plotly_end); }
std::string_view report_html() { return view(ihlab_asset_report_html, ihlab_asset_report_html_end); }
std::string_view report_js() { return view(ihlab_asset_report_js, ihlab_asset_report_js_end); }
std::string_view report_css() { return view(ihlab_asset_report_css, ihlab_asset_report_css_end); }
std::string_view figures_py() { return view(ihlab_asset_figures_py, ihlab_asset_figures_py_end); }

}  // namespace ihlab::assets
