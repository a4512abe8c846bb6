// Fills the embedded HTML template and writes DIR/report.html; runs the figure script first so the
// report can link the figures it wrote.
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>

#include "core/error.h"
#include "report/assets.h"
#include "report/report.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

void replace_once(std::string& s, std::string_view key, std::string_view value) {
  size_t at = s.find(key);
  IHLAB_CHECK(at != std::string::npos, "report: template lacks {}", key);
  s.replace(at, key.size(), value);
}

// JSON inside <script type="application/json">: "</" would close the element early.
std::string script_safe_json(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<' && i + 1 < s.size() && s[i + 1] == '/')
      out += "<\\";
    else
      out += s[i];
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else
      out += c;
  }
  return out;
}

}  // namespace

std::string render_report_html(const nlohmann::json& data) {
  std::string html(assets::report_html());
  // Order matters: each value is inserted after the keys before it are gone, and none of the
  // inserted texts is searched again.
  replace_once(html, "@TITLE@", html_escape(data.value("name", "run")));
  replace_once(html, "@CSS@", assets::report_css());
  replace_once(html, "@DATA@", script_safe_json(data));
  replace_once(html, "@PLOTLY@", assets::plotly_js());
  replace_once(html, "@APP@", assets::report_js());
  return html;
}

std::string write_figures(const std::string& dir, bool quiet) {
  // Debian's interpreter is the one with python3-matplotlib; IHLAB_PYTHON overrides.
  std::string python = "/usr/bin/python3";
  if (const char* env = std::getenv("IHLAB_PYTHON")) python = env;
  if (!fs::exists(python)) return fmt::format("figures skipped: no {} (set IHLAB_PYTHON)", python);
  std::string cmd = fmt::format("'{}' - '{}'{}", python, dir, quiet ? " >/dev/null 2>&1" : "");
  FILE* p = popen(cmd.c_str(), "w");
  if (!p) return "figures skipped: could not start " + python;
  std::string_view script = assets::figures_py();
  fwrite(script.data(), 1, script.size(), p);
  int rc = pclose(p);
  if (rc != 0)
    return fmt::format("figures: the figure script exited with status {} (is python3-matplotlib installed?)", rc);
  return "";
}

ReportResult write_report(const std::string& dir, const ReportOptions& options, const ReportInputs& in) {
  ReportResult r;
  IHLAB_CHECK(fs::is_directory(dir), "report: '{}' is not a directory", dir);
  if (options.figures) {
    std::string why = write_figures(dir, options.quiet);
    if (!why.empty()) r.warnings.push_back(why);
  }
  std::string html = render_report_html(report_data(dir, in));
  r.html = (fs::path(dir) / "report.html").string();
  std::string tmp = r.html + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary);
    f.write(html.data(), std::streamsize(html.size()));
    IHLAB_CHECK(bool(f), "report: cannot write '{}'", tmp);
  }
  fs::rename(tmp, r.html);
  return r;
}

}  // namespace ihlab
