// Schema declaration, resolution (validation + defaults) and help text. TOML reading/writing and
// overrides live in config_toml.cpp.
#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "core/error.h"
#include "io/config.h"

namespace ihlab {

namespace {

using json = nlohmann::json;

bool valid_name(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
// neighbouring characters all cost 1.
std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

// The closest candidate, if it is close enough to be a plausible typo.
std::optional<std::string> suggest(const std::string& word, const std::vector<std::string>& cands) {
  const std::size_t limit = word.size() <= 3 ? 1 : word.size() <= 6 ? 2 : 3;
  std::optional<std::string> best;
  std::size_t best_d = limit + 1;
  for (const auto& c : cands) {
    std::size_t d = edit_distance(word, c);
    if (d < best_d && d < std::max(word.size(), c.size())) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

std::string join(const std::vector<std::string>& v, const std::string& sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

bool is_list(KeyType t) { return t == KeyType::IntList || t == KeyType::FloatList || t == KeyType::StringList; }
KeyType element_type(KeyType t) {
  switch (t) {
    case KeyType::IntList: return KeyType::Int;
    case KeyType::FloatList: return KeyType::Float;
    case KeyType::StringList: return KeyType::String;
    default: return t;
  }
}
bool is_numeric(KeyType t) {
  KeyType e = element_type(t);
  return e == KeyType::Int || e == KeyType::Float;
}

std::string fmt_bound(double b, bool integer) {
  if (integer && std::isfinite(b) && std::fabs(b) < 9.0e15 && b == std::floor(b))
    return fmt::format("{}", static_cast<long long>(b));
  return fmt::format("{}", b);
}

// "2 <= vocab <= 65536", "lr > 0", "dropout < 1"; empty without bounds.
std::string range_text(const KeySpec& s, const std::string& name) {
  const bool integer = element_type(s.type) == KeyType::Int;
  const char* lo_op = s.min_exclusive ? "<" : "<=";
  const char* hi_op = s.max_exclusive ? "<" : "<=";
  if (s.min && s.max)
    return fmt::format("{} {} {} {} {}", fmt_bound(*s.min, integer), lo_op, name, hi_op, fmt_bound(*s.max, integer));
  if (s.min) return fmt::format("{} {} {}", name, s.min_exclusive ? ">" : ">=", fmt_bound(*s.min, integer));
  if (s.max) return fmt::format("{} {} {}", name, hi_op, fmt_bound(*s.max, integer));
  return "";
}

// "int, 2 <= vocab <= 65536" or "string, one of: sgd, adam".
std::string constraint_text(const KeySpec& s) {
  std::string out = key_type_name(s.type);
  std::string name = is_list(s.type) ? s.key + "[i]" : s.key;
  std::string r = range_text(s, name);
  if (!r.empty()) out += ", " + r;
  if (!s.choices.empty()) out += (is_list(s.type) ? ", each one of: " : ", one of: ") + join(s.choices);
  return out;
}

json check_scalar(const KeySpec& s, KeyType t, const json& v, const std::string& path, const std::string& range_name) {
  switch (t) {
    case KeyType::Int:
      if (!v.is_number_integer()) fail("config: key '{}' = {} must be an integer", path, toml_value(v));
      break;
    case KeyType::Float:
      if (!v.is_number()) fail("config: key '{}' = {} must be a number", path, toml_value(v));
      break;
    case KeyType::Bool:
      if (!v.is_boolean()) fail("config: key '{}' = {} must be true or false", path, toml_value(v));
      return v;
    case KeyType::String:
      if (!v.is_string()) fail("config: key '{}' = {} must be a string", path, toml_value(v));
      if (!s.choices.empty() &&
          std::find(s.choices.begin(), s.choices.end(), v.get<std::string>()) == s.choices.end()) {
        std::string msg = fmt::format("config: key '{}' = {} is not allowed (choose one of: {})", path, toml_value(v),
                                      join(s.choices));
        if (auto near = suggest(v.get<std::string>(), s.choices)) msg += fmt::format("; did you mean \"{}\"?", *near);
        throw Error(msg);
      }
      return v;
    default: break;
  }
  // numbers
  const double d = v.get<double>();
  bool ok = true;
  if (s.min) ok = ok && (s.min_exclusive ? d > *s.min : d >= *s.min);
  if (s.max) ok = ok && (s.max_exclusive ? d < *s.max : d <= *s.max);
  if ((s.min || s.max) && std::isnan(d)) ok = false;
  if (!ok) fail("config: key '{}' = {} is out of range (allowed: {})", path, toml_value(v), range_text(s, range_name));
  if (t == KeyType::Float) return json(d);
  return v;
}

// Checks one key's value and returns it normalized (ints promoted to floats for Float keys).
json check_value(const KeySpec& s, const json& v, const std::string& path) {
  if (!is_list(s.type)) return check_scalar(s, s.type, v, path, s.key);
  if (!v.is_array()) {
    const char* what = s.type == KeyType::IntList     ? "a list of integers"
                       : s.type == KeyType::FloatList ? "a list of numbers"
                                                      : "a list of strings";
    fail("config: key '{}' = {} must be {}", path, toml_value(v), what);
  }
  json out = json::array();
  for (std::size_t i = 0; i < v.size(); ++i)
    out.push_back(check_scalar(s, element_type(s.type), v[i], fmt::format("{}[{}]", path, i), s.key + "[i]"));
  return out;
}

std::string quoted_list(const std::vector<std::string>& v) {
  std::vector<std::string> q;
  for (const auto& s : v) q.push_back("\"" + s + "\"");
  return join(q, " or ");
}

struct VariantContext {
  const Schema::Entry* entry;  // the Variants entry
  std::string selected;
};

json resolve_table(const Schema& schema, const json& raw_in, const std::string& prefix, const std::string& scope,
                   const VariantContext* vc) {
  static const json empty = json::object();
  const json& raw = raw_in.is_null() ? empty : raw_in;

  // Unknown keys first, so a typo is reported as such rather than as a missing required key.
  std::vector<std::string> allowed;
  for (const auto& e : schema.entries()) allowed.push_back(e.name);
  if (vc) allowed.push_back(vc->entry->spec.key);
  std::sort(allowed.begin(), allowed.end());
  for (const auto& item : raw.items()) {
    const std::string& k = item.key();
    if (std::binary_search(allowed.begin(), allowed.end(), k)) continue;
    std::string msg = fmt::format("config: unknown key '{}{}' (", prefix, k);
    msg += allowed.empty() ? fmt::format("no keys are allowed {})", scope)
                           : fmt::format("allowed {}: {})", scope, join(allowed));
    std::vector<std::string> owners;  // other variants that do declare this key
    if (vc)
      for (const auto& [value, sub] : vc->entry->variants)
        if (value != vc->selected && sub->find(k)) owners.push_back(value);
    if (!owners.empty())
      msg += fmt::format("; '{}' belongs to {} = {}", k, vc->entry->spec.key, quoted_list(owners));
    else if (auto near = suggest(k, allowed))
      msg += fmt::format("; did you mean '{}{}'?", prefix, *near);
    throw Error(msg);
  }

  json out = json::object();
  for (const auto& e : schema.entries()) {
    const std::string path = prefix + e.name;
    const bool has = raw.contains(e.name);
    const json& v = has ? raw.at(e.name) : empty;
    switch (e.kind) {
      case Schema::Entry::Kind::Key:
        if (has) {
          out[e.name] = check_value(e.spec, v, path);
        } else if (!e.spec.default_value.is_null()) {
          out[e.name] = e.spec.default_value;
        } else {
          fail("config: missing required key '{}' ({}){}", path, constraint_text(e.spec),
               e.help.empty() ? "" : ": " + e.help);
        }
        break;
      case Schema::Entry::Kind::Table:
        if (has && !v.is_object()) fail("config: key '{}' = {} must be a table ([{}])", path, toml_value(v), path);
        out[e.name] = resolve_table(*e.sub, v, path + ".", "in [" + path + "]", nullptr);
        break;
      case Schema::Entry::Kind::TableArray: {
        if (has && !v.is_array())
          fail("config: key '{}' = {} must be an array of tables ([[{}]])", path, toml_value(v), path);
        const std::size_t n = has ? v.size() : 0;
        if (n < e.min_count)
          fail("config: key '{}' has {} entr{} (allowed: at least {} [[{}]] table{})", path, n, n == 1 ? "y" : "ies",
               e.min_count, path, e.min_count == 1 ? "" : "s");
        json arr = json::array();
        for (std::size_t i = 0; i < n; ++i) {
          const std::string elem = fmt::format("{}[{}]", path, i);
          if (!v[i].is_object())
            fail("config: key '{}' = {} must be a table (an element of [[{}]])", elem, toml_value(v[i]), path);
          arr.push_back(resolve_table(*e.sub, v[i], elem + ".", "in [[" + path + "]]", nullptr));
        }
        out[e.name] = std::move(arr);
        break;
      }
      case Schema::Entry::Kind::Variants: {
        if (has && !v.is_object()) fail("config: key '{}' = {} must be a table ([{}])", path, toml_value(v), path);
        const std::string sel_path = path + "." + e.spec.key;
        json sel;
        if (v.contains(e.spec.key)) {
          sel = check_value(e.spec, v.at(e.spec.key), sel_path);
        } else if (!e.spec.default_value.is_null()) {
          sel = e.spec.default_value;
        } else {
          fail("config: missing required key '{}' ({}): {}", sel_path, constraint_text(e.spec), e.spec.help);
        }
        VariantContext ctx{&e, sel.get<std::string>()};
        const std::string scope_v = fmt::format("in [{}] for {} = \"{}\"", path, e.spec.key, ctx.selected);
        json r = resolve_table(*e.variants.at(ctx.selected), v, path + ".", scope_v, &ctx);
        r[e.spec.key] = sel;
        out[e.name] = std::move(r);
        break;
      }
    }
  }
  return out;
}

// ---- help text ----

void help_key(const KeySpec& s, const std::string& indent, std::string& out) {
  std::string left =
      indent + s.key + " = " + (s.default_value.is_null() ? std::string("<required>") : toml_value(s.default_value));
  if (left.size() < 34)
    left.resize(34, ' ');
  else
    left += "  ";
  out += left + "(" + constraint_text(s) + ")\n";
  if (!s.help.empty()) out += indent + "    " + s.help + "\n";
}

void help_schema(const Schema& schema, const std::string& prefix, const std::string& indent, std::string& out) {
  for (const auto& e : schema.entries())
    if (e.kind == Schema::Entry::Kind::Key) help_key(e.spec, indent, out);
  for (const auto& e : schema.entries()) {
    const std::string path = prefix + e.name;
    switch (e.kind) {
      case Schema::Entry::Kind::Key: break;
      case Schema::Entry::Kind::Table:
        out += fmt::format("\n{}[{}]{}\n", indent, path, e.help.empty() ? "" : "  # " + e.help);
        help_schema(*e.sub, path + ".", indent, out);
        break;
      case Schema::Entry::Kind::TableArray:
        out += fmt::format("\n{}[[{}]]  # array of tables{}{}\n", indent, path,
                           e.min_count ? fmt::format(", at least {}", e.min_count) : "",
                           e.help.empty() ? "" : "; " + e.help);
        help_schema(*e.sub, path + ".", indent, out);
        break;
      case Schema::Entry::Kind::Variants:
        out += fmt::format("\n{}[{}]  # keys depend on {}\n", indent, path, e.spec.key);
        help_key(e.spec, indent, out);
        for (const auto& [value, sub] : e.variants) {
          out += fmt::format("{}  when {} = \"{}\":\n", indent, e.spec.key, value);
          if (sub->entries().empty()) out += indent + "    (no other keys)\n";
          help_schema(*sub, path + ".", indent + "    ", out);
        }
        break;
    }
  }
}

}  // namespace

const char* key_type_name(KeyType t) {
  switch (t) {
    case KeyType::Int: return "int";
    case KeyType::Float: return "float";
    case KeyType::Bool: return "bool";
    case KeyType::String: return "string";
    case KeyType::IntList: return "list of int";
    case KeyType::FloatList: return "list of float";
    case KeyType::StringList: return "list of string";
  }
  return "?";
}

const Schema::Entry* Schema::find(const std::string& name) const {
  for (const auto& e : entries_)
    if (e.name == name) return &e;
  return nullptr;
}

void Schema::add_entry(Entry e) {
  if (!valid_name(e.name)) fail("config schema: invalid name '{}' (use letters, digits, '_' and '-')", e.name);
  if (find(e.name)) fail("config schema: '{}' is declared twice", e.name);
  entries_.push_back(std::move(e));
}

Schema& Schema::add(KeySpec spec) {
  if (!valid_name(spec.key)) fail("config schema: invalid key name '{}' (use letters, digits, '_' and '-')", spec.key);
  if ((spec.min || spec.max) && !is_numeric(spec.type))
    fail("config schema: key '{}' is a {}, which cannot have bounds", spec.key, key_type_name(spec.type));
  if (!spec.choices.empty() && element_type(spec.type) != KeyType::String)
    fail("config schema: key '{}' is a {}, which cannot have choices", spec.key, key_type_name(spec.type));
  if (spec.min && spec.max && *spec.min > *spec.max)
    fail("config schema: key '{}' has min {} > max {}", spec.key, *spec.min, *spec.max);
  if (!spec.default_value.is_null()) {
    try {
      spec.default_value = check_value(spec, spec.default_value, spec.key);
    } catch (const Error& err) {
      fail("config schema: bad default for '{}': {}", spec.key, err.what());
    }
  }
  Entry e;
  e.kind = Entry::Kind::Key;
  e.name = spec.key;
  e.help = spec.help;
  e.spec = std::move(spec);
  add_entry(std::move(e));
  return *this;
}

namespace {
KeySpec make_spec(const std::string& key, KeyType t, nlohmann::json def, const std::string& help,
                  std::optional<double> min = {}, std::optional<double> max = {},
                  std::vector<std::string> choices = {}) {
  KeySpec s;
  s.key = key;
  s.type = t;
  s.default_value = std::move(def);
  s.help = help;
  s.min = min;
  s.max = max;
  s.choices = std::move(choices);
  return s;
}
}  // namespace

Schema& Schema::integer(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min,
                        std::optional<double> max) {
  return add(make_spec(key, KeyType::Int, std::move(def), help, min, max));
}
Schema& Schema::real(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min,
                     std::optional<double> max) {
  return add(make_spec(key, KeyType::Float, std::move(def), help, min, max));
}
Schema& Schema::boolean(const std::string& key, nlohmann::json def, const std::string& help) {
  return add(make_spec(key, KeyType::Bool, std::move(def), help));
}
Schema& Schema::string(const std::string& key, nlohmann::json def, const std::string& help,
                       std::vector<std::string> choices) {
  return add(make_spec(key, KeyType::String, std::move(def), help, {}, {}, std::move(choices)));
}
Schema& Schema::int_list(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min,
                         std::optional<double> max) {
  return add(make_spec(key, KeyType::IntList, std::move(def), help, min, max));
}
Schema& Schema::real_list(const std::string& key, nlohmann::json def, const std::string& help,
                          std::optional<double> min, std::optional<double> max) {
  return add(make_spec(key, KeyType::FloatList, std::move(def), help, min, max));
}
Schema& Schema::string_list(const std::string& key, nlohmann::json def, const std::string& help,
                            std::vector<std::string> choices) {
  return add(make_spec(key, KeyType::StringList, std::move(def), help, {}, {}, std::move(choices)));
}

Schema& Schema::table(const std::string& name, Schema sub, const std::string& help) {
  Entry e;
  e.kind = Entry::Kind::Table;
  e.name = name;
  e.help = help;
  e.sub = std::make_shared<const Schema>(std::move(sub));
  add_entry(std::move(e));
  return *this;
}

Schema& Schema::table_array(const std::string& name, Schema element, std::size_t min_count, const std::string& help) {
  Entry e;
  e.kind = Entry::Kind::TableArray;
  e.name = name;
  e.help = help;
  e.sub = std::make_shared<const Schema>(std::move(element));
  e.min_count = min_count;
  add_entry(std::move(e));
  return *this;
}

Schema& Schema::variants(const std::string& table, const std::string& selector, std::map<std::string, Schema> by_value,
                         std::string default_variant, const std::string& help) {
  if (!valid_name(selector)) fail("config schema: invalid selector name '{}' for [{}]", selector, table);
  if (by_value.empty()) fail("config schema: [{}] declares no variants", table);
  if (!default_variant.empty() && !by_value.count(default_variant))
    fail("config schema: default variant \"{}\" of [{}] is not declared", default_variant, table);
  Entry e;
  e.kind = Entry::Kind::Variants;
  e.name = table;
  e.help = help;
  e.spec.key = selector;
  e.spec.type = KeyType::String;
  e.spec.help = help.empty() ? fmt::format("selects which keys [{}] takes", table) : help;
  if (!default_variant.empty()) e.spec.default_value = default_variant;
  for (auto& [value, sub] : by_value) {
    if (sub.find(selector))
      fail("config schema: variant \"{}\" of [{}] must not declare the selector '{}'", value, table, selector);
    e.spec.choices.push_back(value);
    e.variants[value] = std::make_shared<const Schema>(std::move(sub));
  }
  add_entry(std::move(e));
  return *this;
}

nlohmann::json Schema::resolve(const nlohmann::json& raw) const {
  if (!raw.is_null() && !raw.is_object()) fail("config: the configuration must be a table, got {}", toml_value(raw));
  return resolve_table(*this, raw, "", "at top level", nullptr);
}

std::string Schema::help_text() const {
  std::string out;
  help_schema(*this, "", "", out);
  if (!out.empty() && out.front() == '\n') out.erase(0, 1);
  return out;
}

}  // namespace ihlab
