// TOML <-> JSON for configuration: parsing (toml++), command-line overrides and writing TOML.
// toml++ is used only here and only through its parser, so it works both header-only (the
// default) and as the shared library that the CMake target tomlplusplus::tomlplusplus selects.
#include <toml++/toml.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/config.h"

namespace ihlab {

namespace {

using json = nlohmann::json;

json node_to_json(const toml::node& node);

json table_to_json(const toml::table& t) {
  json out = json::object();
  for (auto&& [k, v] : t) out[std::string(k.str())] = node_to_json(v);
  return out;
}

template <typename T>
std::string stream_string(const T& x) {
  std::ostringstream os;
  os << x;
  return os.str();
}

json node_to_json(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table: return table_to_json(*node.as_table());
    case toml::node_type::array: {
      json out = json::array();
      for (auto&& el : *node.as_array()) out.push_back(node_to_json(el));
      return out;
    }
    case toml::node_type::string: return json(node.as_string()->get());
    case toml::node_type::integer: return json(static_cast<int64_t>(node.as_integer()->get()));
    case toml::node_type::floating_point: return json(node.as_floating_point()->get());
    case toml::node_type::boolean: return json(node.as_boolean()->get());
    case toml::node_type::date: return json(stream_string(*node.as_date()));
    case toml::node_type::time: return json(stream_string(*node.as_time()));
    case toml::node_type::date_time: return json(stream_string(*node.as_date_time()));
    default: return json();
  }
}

std::string trim(const std::string& s) {
  const char* ws = " \t\r\n";
  std::size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  std::size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

bool is_bare_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF. TOML text must be UTF-8, so
// a string that is not cannot be written to config.toml and read back.
bool valid_utf8(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned c = p[i];
    std::size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    uint32_t cp = len == 1 ? c : c & (0x7f >> len);
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3f);
    }
    const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

std::string toml_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\f': out += "\\f"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f)
          out += fmt::format("\\u{:04X}", static_cast<unsigned>(c));
        else
          out += ch;
    }
  }
  return out + "\"";
}

std::string toml_key(const std::string& k) { return is_bare_key(k) ? k : toml_string(k); }

// Shortest text that reads back as the same double, always recognizably a float.
std::string toml_float(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", d);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

// `strict`: throw for null (to_toml) instead of writing `null` (messages).
void write_inline(const json& v, bool strict, const std::string& path, std::string& out) {
  switch (v.type()) {
    case json::value_t::null:
      if (strict) fail("config: cannot write key '{}' as TOML: its value is null", path);
      out += "null";
      break;
    case json::value_t::boolean: out += v.get<bool>() ? "true" : "false"; break;
    case json::value_t::number_integer: out += fmt::format("{}", v.get<int64_t>()); break;
    case json::value_t::number_unsigned: out += fmt::format("{}", v.get<uint64_t>()); break;
    case json::value_t::number_float: out += toml_float(v.get<double>()); break;
    case json::value_t::string: out += toml_string(v.get<std::string>()); break;
    case json::value_t::array: {
      out += "[";
      for (std::size_t i = 0; i < v.size(); ++i) {
        if (i) out += ", ";
        write_inline(v[i], strict, fmt::format("{}[{}]", path, i), out);
      }
      out += "]";
      break;
    }
    case json::value_t::object: {
      if (v.empty()) {
        out += "{}";
        break;
      }
      out += "{ ";
      bool first = true;
      for (const auto& item : v.items()) {
        if (!first) out += ", ";
        first = false;
        out += toml_key(item.key()) + " = ";
        write_inline(item.value(), strict, path + "." + item.key(), out);
      }
      out += " }";
      break;
    }
    default: fail("config: cannot write key '{}' as TOML (unsupported value)", path);
  }
}

bool is_table_array(const json& v) {
  if (!v.is_array() || v.empty()) return false;
  for (const auto& el : v)
    if (!el.is_object()) return false;
  return true;
}

// Writes the keys of one table: plain keys first, then [sub.tables], then [[arrays.of.tables]].
// `header` is the dotted TOML name of this table ("" at top level), `path` its name in messages.
void write_table_body(const json& obj, const std::string& header, const std::string& path, std::string& out) {
  auto child_path = [&](const std::string& k) { return path.empty() ? k : path + "." + k; };
  auto child_header = [&](const std::string& k) { return header.empty() ? toml_key(k) : header + "." + toml_key(k); };
  auto section_break = [&] {
    if (!out.empty()) out += "\n";
  };
  for (const auto& item : obj.items()) {
    if (item.value().is_object() || is_table_array(item.value())) continue;
    out += toml_key(item.key()) + " = ";
    write_inline(item.value(), true, child_path(item.key()), out);
    out += "\n";
  }
  for (const auto& item : obj.items()) {
    if (!item.value().is_object()) continue;
    section_break();
    out += '[';
    out += child_header(item.key());
    out += "]\n";
    write_table_body(item.value(), child_header(item.key()), child_path(item.key()), out);
  }
  for (const auto& item : obj.items()) {
    if (!is_table_array(item.value())) continue;
    for (std::size_t i = 0; i < item.value().size(); ++i) {
      section_break();
      out += "[[";
      out += child_header(item.key());
      out += "]]\n";
      write_table_body(item.value()[i], child_header(item.key()), fmt::format("{}[{}]", child_path(item.key()), i),
                       out);
    }
  }
}

// One step of an override path: a key, or an element index ("stages[1]" or "stages.1").
struct PathStep {
  std::string name;
  bool bracket = false;  // written as [n]: must index an array
  bool numeric = false;  // all digits: an index unless it meets a table, where it is a key
  std::size_t index = 0;
};

bool parse_index(const std::string& s, std::size_t& idx) {
  if (s.empty() || s.size() > 9) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  idx = static_cast<std::size_t>(std::stoul(s));
  return true;
}

std::vector<PathStep> parse_override_path(const std::string& key, const std::string& assignment) {
  auto bad = [&](const char* why) {
    fail("config: malformed override '{}': {} (expected key=value, e.g. stages.0.lr=0.001)", assignment, why);
  };
  if (key.empty()) bad("the key is empty");
  std::vector<PathStep> steps;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = key.find('.', start);
    std::string part = key.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    std::size_t br = part.find('[');
    std::string name = part.substr(0, br);
    if (name.empty()) bad("empty key segment");
    if (name.find(']') != std::string::npos) bad("unbalanced ']'");
    // Every key a schema declares is a bare TOML key; anything else could only be rejected later,
    // with a message that repeats bytes that may not even be text.
    if (!is_bare_key(name)) bad("a key may only hold letters, digits, '_' and '-'");
    PathStep s;
    s.name = name;
    s.numeric = parse_index(name, s.index);
    steps.push_back(s);
    while (br != std::string::npos) {
      std::size_t close = part.find(']', br);
      if (close == std::string::npos) bad("unbalanced '['");
      PathStep idx;
      idx.bracket = true;
      if (!parse_index(part.substr(br + 1, close - br - 1), idx.index))
        bad("an index in [] must be a non-negative integer");
      idx.name = part.substr(br + 1, close - br - 1);
      steps.push_back(idx);
      br = close + 1 < part.size() ? close + 1 : std::string::npos;
      if (br != std::string::npos && part[br] != '[') bad("unexpected text after ']'");
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return steps;
}

json parse_override_value(const std::string& text, const std::string& assignment) {
  try {
    json doc = parse_toml_string("v = " + text, "<override>");
    if (doc.is_object() && doc.size() == 1 && doc.contains("v")) return doc["v"];
  } catch (const Error&) {
    // not a TOML value: a bare string
  }
  // TOML's own strings are checked by its parser; a bare one must be text too, or the run's
  // config.toml, which `ihlab train --resume` reads, could not be read back.
  if (!valid_utf8(text))
    fail("config: malformed override '{}': the value is not valid UTF-8 (expected key=value, e.g. name=run1)",
         assignment);
  return json(trim(text));
}

}  // namespace

std::string toml_value(const nlohmann::json& value) {
  std::string out;
  write_inline(value, false, "", out);
  return out;
}

nlohmann::json parse_toml_string(const std::string& text, const std::string& source_name) {
#if TOML_EXCEPTIONS
  try {
    toml::table t = toml::parse(text, source_name);
    return table_to_json(t);
  } catch (const toml::parse_error& e) {
    fail("config: {}:{}:{}: {}", source_name, e.source().begin.line, e.source().begin.column, e.description());
  }
#else
  toml::parse_result r = toml::parse(text, source_name);
  if (!r) {
    const auto& e = r.error();
    fail("config: {}:{}:{}: {}", source_name, e.source().begin.line, e.source().begin.column, e.description());
  }
  return table_to_json(r.table());
#endif
}

nlohmann::json parse_toml_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("config: cannot read config file '{}': {}", path, std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("config: error while reading config file '{}'", path);
  return parse_toml_string(ss.str(), path);
}

void apply_override(nlohmann::json& raw, const std::string& assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string::npos)
    fail("config: malformed override '{}': no '=' (expected key=value, e.g. stages.0.lr=0.001)", assignment);
  const std::string key = trim(assignment.substr(0, eq));
  const std::vector<PathStep> steps = parse_override_path(key, assignment);
  json value = parse_override_value(assignment.substr(eq + 1), assignment);

  if (raw.is_null()) raw = json::object();
  json* cur = &raw;
  std::string walked;  // the path so far, for messages
  for (const PathStep& s : steps) {
    // An all-digit segment indexes an array (or a missing one); it is a key only in a table.
    const bool as_index = s.bracket || (s.numeric && !cur->is_object());
    if (as_index) {
      if (!cur->is_array() && !cur->is_null())
        fail("config: override '{}': '{}' = {} is not an array, so it has no element {}", assignment, walked,
             toml_value(*cur), s.index);
      const std::size_t n = cur->is_array() ? cur->size() : 0;
      if (s.index >= n)
        fail("config: override '{}': index {} is out of range ('{}' has {} element{})", assignment, s.index, walked, n,
             n == 1 ? "" : "s");
      cur = &(*cur)[s.index];
      walked += fmt::format("[{}]", s.index);
    } else {
      if (cur->is_null()) *cur = json::object();
      if (cur->is_array())
        fail(
            "config: override '{}': '{}' is an array; address an element by index, e.g. "
            "{}.0.{}",
            assignment, walked, walked, s.name);
      if (!cur->is_object())
        fail("config: override '{}': '{}' = {} is not a table, so it has no key '{}'", assignment, walked,
             toml_value(*cur), s.name);
      cur = &(*cur)[s.name];
      walked += (walked.empty() ? "" : ".") + s.name;
    }
  }
  *cur = std::move(value);
}

std::string to_toml(const nlohmann::json& resolved) {
  if (!resolved.is_object()) fail("config: to_toml needs a table at the top level, got {}", toml_value(resolved));
  std::string out;
  write_table_body(resolved, "", "", out);
  return out;
}

nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides, const Schema& schema) {
  nlohmann::json raw = parse_toml_file(path);
  for (const auto& o : overrides) apply_override(raw, o);
  return schema.resolve(raw);
}

}  // namespace ihlab
