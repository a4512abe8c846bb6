#include "io/attention_log.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace ihlab {
namespace fs = std::filesystem;

AttentionLog::AttentionLog(std::string path, int64_t keep, int64_t resume_after_step)
    : path_(std::move(path)), keep_(keep) {
  std::vector<std::string> kept;
  if (resume_after_step >= 0 && fs::exists(path_)) {
    std::ifstream in(path_);
    size_t line_no = 0;
    for (std::string line; std::getline(in, line);) {
      ++line_no;
      if (in.eof()) break;  // no newline: a line cut off by a crash
      // Every complete line was written by write(): anything else means the file is damaged.
      const auto j = nlohmann::json::parse(line, nullptr, false);
      const auto step = j.is_object() ? j.find("step") : j.end();
      IHLAB_CHECK(
          step != j.end() && (step->is_number_unsigned() ? step->get<uint64_t>() <= uint64_t(INT64_MAX)
                                                         : step->is_number_integer() && step->get<int64_t>() >= 0),
          "attention log {} line {}: not a snapshot (expected a JSON object with \"step\" = an integer >= 0)", path_,
          line_no);
      if (step->get<int64_t>() <= resume_after_step) {
        kept.push_back(line);
        last_step_ = step->get<int64_t>();
      }
    }
    std::string tmp = path_ + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      for (auto& l : kept) f << l << '\n';
      IHLAB_CHECK(bool(f), "attention log: cannot write '{}'", tmp);
    }
    fs::rename(tmp, path_);
    out_.open(path_, std::ios::app);
  } else {
    out_.open(path_, std::ios::trunc);
  }
  IHLAB_CHECK(bool(out_), "attention log: cannot open '{}' for writing", path_);
}

void AttentionLog::write(int64_t step, int64_t stage, const std::vector<int32_t>& tokens,
                         const std::vector<AttentionMap>& maps) {
  if (maps.empty()) return;
  const int64_t n = int64_t(tokens.size()), keep = std::min(keep_, n), offset = n - keep;
  nlohmann::json j = {{"step", step},
                      {"stage", stage},
                      {"offset", offset},
                      {"tokens", std::vector<int32_t>(tokens.begin() + offset, tokens.end())}};
  nlohmann::json jm = nlohmann::json::array();
  for (auto& m : maps) {
    const int64_t q0 = std::max<int64_t>(0, m.queries - keep), k0 = std::max<int64_t>(0, m.keys - keep);
    nlohmann::json w = nlohmann::json::array();
    for (int64_t q = q0; q < m.queries; ++q)
      for (int64_t k = k0; k < m.keys; ++k) {
        double v = m.weights[size_t(q * m.keys + k)];
        // Four significant digits are enough for a heat-map; zeros (masked keys) are written "0".
        if (!std::isfinite(v) || v == 0)
          w.push_back(0);
        else
          w.push_back(std::strtod(fmt::format("{:.4g}", v).c_str(), nullptr));
      }
    jm.push_back({{"layer", m.layer},
                  {"head", m.head},
                  {"queries", m.queries - q0},
                  {"keys", m.keys - k0},
                  {"query_offset", q0},
                  {"key_offset", k0},
                  {"weights", std::move(w)}});
  }
  j["maps"] = std::move(jm);
  out_ << j.dump() << '\n';
  out_.flush();
  last_step_ = step;
}

}  // namespace ihlab
