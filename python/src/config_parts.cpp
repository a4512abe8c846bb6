#include "config_parts.h"

#include <algorithm>
#include <map>

#include "train/run_schema.h"

namespace ihlab::py {

Schema run_schema_part(const std::vector<std::string>& keep) {
  static const Schema full = run_schema();
  Schema s;
  for (const auto& e : full.entries()) {
    if (std::find(keep.begin(), keep.end(), e.name) == keep.end()) continue;
    switch (e.kind) {
      case Schema::Entry::Kind::Key: s.add(e.spec); break;
      case Schema::Entry::Kind::Table: s.table(e.name, *e.sub, e.help); break;
      case Schema::Entry::Kind::TableArray: s.table_array(e.name, *e.sub, e.min_count, e.help); break;
      case Schema::Entry::Kind::Variants: {
        std::map<std::string, Schema> by;
        for (auto& [k, v] : e.variants) by.emplace(k, *v);
        s.variants(e.name, e.spec.key, by,
                   e.spec.default_value.is_string() ? e.spec.default_value.get<std::string>() : "", e.help);
        break;
      }
    }
  }
  return s;
}

nlohmann::json resolve_part(const nlohmann::json& raw, const std::vector<std::string>& keep) {
  nlohmann::json part = nlohmann::json::object();
  if (raw.is_object())
    for (auto& [k, v] : raw.items())
      if (std::find(keep.begin(), keep.end(), k) != keep.end()) part[k] = v;
  return run_schema_part(keep).resolve(part);
}

}  // namespace ihlab::py
