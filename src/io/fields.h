#pragma once
// One declaration per configuration key. A configuration struct lists its keys once, in a
// `fields` member template, with the member it fills, its help text and its range:
//
//   enum class DataMode { Fresh, Fixed };
//   constexpr auto enum_choices(DataMode) {  // found by argument-dependent lookup
//     return std::array<EnumChoice<DataMode>, 2>{{{DataMode::Fresh, "fresh"}, {DataMode::Fixed, "fixed"}}};
//   }
//   struct DataSpec {
//     DataMode mode = DataMode::Fresh;  // the default is the member's initial value
//     int64_t train_size = 1024;
//     template <class V> void fields(V& v) {
//       v("mode", mode, "fresh: a new batch every step; fixed: one training set");
//       v("train_size", train_size, "fixed mode: training sequences", in(1, 1e9));
//     }
//   };
//
// That one list gives everything else:
//   schema_of<DataSpec>()        the Schema (type, default, range or choices, help) that parses,
//                                validates, prints `ihlab config` and resolves defaults;
//   read_fields<DataSpec>(json)  the typed struct from a resolved table;
//   write_fields(spec)           the resolved table from the struct (config.toml is written from it).
// Enums are the only way to declare a choice: their names are the allowed strings.
// Nested tables and arrays of tables are declared with v.table / v.table_array on members that
// have `fields` themselves; a [task] or [model] table whose keys depend on its `name` is kept as
// its resolved JSON and declared with v.variants (the registries give each name's schema).
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "io/config.h"

namespace ihlab {

template <class E>
struct EnumChoice {
  E value;
  const char* name;
};

template <class E>
concept ConfigEnum = std::is_enum_v<E> && requires(E e) {
  enum_choices(e);
};

template <ConfigEnum E>
std::vector<std::string> enum_names() {
  std::vector<std::string> out;
  for (const auto& c : enum_choices(E{})) out.push_back(c.name);
  return out;
}

// The configuration name of an enum value ("fresh" for DataMode::Fresh).
template <ConfigEnum E>
const char* enum_name(E e) {
  for (const auto& c : enum_choices(E{}))
    if (c.value == e) return c.name;
  fail("internal: enum value {} has no name", static_cast<long long>(e));
}

// The enum value named `s`; `key` names the configuration key in the error.
template <ConfigEnum E>
E parse_enum(std::string_view s, std::string_view key) {
  for (const auto& c : enum_choices(E{}))
    if (s == c.name) return c.value;
  std::string allowed;
  for (const auto& n : enum_names<E>()) allowed += (allowed.empty() ? "" : ", ") + n;
  fail("config: key '{}' = \"{}\" is not allowed (choose one of: {})", key, s, allowed);
}

// Range of a number (or of each element of a number list). Bounds are inclusive unless opened.
struct Bounds {
  std::optional<double> min, max;
  bool min_exclusive = false, max_exclusive = false;
  constexpr Bounds below(double hi) const {  // adds an exclusive upper bound
    Bounds b = *this;
    b.max = hi, b.max_exclusive = true;
    return b;
  }
  constexpr Bounds at_most(double hi) const {
    Bounds b = *this;
    b.max = hi;
    return b;
  }
};
constexpr Bounds in(double lo, double hi) { return Bounds{lo, hi}; }
constexpr Bounds at_least(double lo) { return Bounds{lo, std::nullopt}; }
constexpr Bounds above(double lo) { return Bounds{lo, std::nullopt, true}; }

namespace fields_detail {

template <class T>
struct IsVector : std::false_type {};
template <class T>
struct IsVector<std::vector<T>> : std::true_type {
  using element = T;
};

template <class T>
constexpr bool is_int = std::is_integral_v<T> && !std::is_same_v<T, bool>;

// The schema type of a member.
template <class T>
constexpr KeyType key_type() {
  if constexpr (std::is_same_v<T, bool>)
    return KeyType::Bool;
  else if constexpr (is_int<T>)
    return KeyType::Int;
  else if constexpr (std::is_floating_point_v<T>)
    return KeyType::Float;
  else if constexpr (std::is_same_v<T, std::string> || ConfigEnum<T>)
    return KeyType::String;
  else if constexpr (IsVector<T>::value) {
    using E = typename IsVector<T>::element;
    if constexpr (is_int<E>)
      return KeyType::IntList;
    else if constexpr (std::is_floating_point_v<E>)
      return KeyType::FloatList;
    else {
      static_assert(std::is_same_v<E, std::string> || ConfigEnum<E>, "unsupported list element type");
      return KeyType::StringList;
    }
  } else {
    static_assert(sizeof(T) == 0, "unsupported configuration field type");
  }
}

template <class T>
std::vector<std::string> choices() {
  if constexpr (ConfigEnum<T>)
    return enum_names<T>();
  else if constexpr (IsVector<T>::value) {
    if constexpr (ConfigEnum<typename IsVector<T>::element>)
      return enum_names<typename IsVector<T>::element>();
    else
      return {};
  } else
    return {};
}

template <class T>
nlohmann::json to_json(const T& v) {
  if constexpr (ConfigEnum<T>)
    return enum_name(v);
  else if constexpr (IsVector<T>::value) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : v) a.push_back(to_json(e));
    return a;
  } else if constexpr (std::is_floating_point_v<T>)
    return static_cast<double>(v);
  else
    return v;
}

template <class T>
T from_json(const nlohmann::json& j, const std::string& path) {
  if constexpr (ConfigEnum<T>)
    return parse_enum<T>(j.get<std::string>(), path);
  else if constexpr (IsVector<T>::value) {
    T out;
    for (std::size_t i = 0; i < j.size(); ++i)
      out.push_back(from_json<typename IsVector<T>::element>(j[i], path + "[" + std::to_string(i) + "]"));
    return out;
  } else
    return j.get<T>();
}

}  // namespace fields_detail

template <class C>
Schema schema_of();
template <class C>
C read_fields(const nlohmann::json& table, const std::string& path = "");
template <class C>
nlohmann::json write_fields(const C& c);

// Builds the Schema: defaults are the members' values in a default-constructed struct.
class SchemaVisitor {
 public:
  explicit SchemaVisitor(Schema& s) : s_(s) {}
  template <class T>
  void operator()(const char* key, T& member, const char* help, Bounds b = {}) {
    KeySpec k;
    k.key = key;
    k.type = fields_detail::key_type<T>();
    k.default_value = fields_detail::to_json(member);
    k.help = help;
    k.min = b.min, k.max = b.max, k.min_exclusive = b.min_exclusive, k.max_exclusive = b.max_exclusive;
    k.choices = fields_detail::choices<T>();
    s_.add(std::move(k));
  }
  template <class C>
  void table(const char* name, C&, const char* help) {
    s_.table(name, schema_of<C>(), help);
  }
  template <class C>
  void table_array(const char* name, std::vector<C>&, std::size_t min_count, const char* help) {
    s_.table_array(name, schema_of<C>(), min_count, help);
  }
  void variants(const char* table, nlohmann::json&, const char* selector, std::map<std::string, Schema> by_value,
                const char* help) {
    s_.variants(table, selector, std::move(by_value), "", help);
  }

 private:
  Schema& s_;
};

// Fills a struct from a resolved table (every key present, already checked against the schema).
class ReadVisitor {
 public:
  ReadVisitor(const nlohmann::json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {}
  template <class T>
  void operator()(const char* key, T& member, const char*, Bounds = {}) {
    member = fields_detail::from_json<T>(at(key), prefix_ + key);
  }
  template <class C>
  void table(const char* name, C& member, const char*) {
    member = read_fields<C>(at(name), prefix_ + name + ".");
  }
  template <class C>
  void table_array(const char* name, std::vector<C>& member, std::size_t, const char*) {
    const auto& a = at(name);
    member.clear();
    for (std::size_t i = 0; i < a.size(); ++i)
      member.push_back(read_fields<C>(a[i], prefix_ + name + "[" + std::to_string(i) + "]."));
  }
  void variants(const char* table, nlohmann::json& member, const char*, const std::map<std::string, Schema>&,
                const char*) {
    member = at(table);
  }

 private:
  const nlohmann::json& at(const char* key) const {
    if (!j_.is_object() || !j_.contains(key))
      fail("config: missing key '{}{}' (read from a table that was not resolved against its schema)", prefix_, key);
    return j_.at(key);
  }
  const nlohmann::json& j_;
  std::string prefix_;
};

class WriteVisitor {
 public:
  explicit WriteVisitor(nlohmann::json& j) : j_(j) {}
  template <class T>
  void operator()(const char* key, T& member, const char*, Bounds = {}) {
    j_[key] = fields_detail::to_json(member);
  }
  template <class C>
  void table(const char* name, C& member, const char*) {
    j_[name] = write_fields(member);
  }
  template <class C>
  void table_array(const char* name, std::vector<C>& member, std::size_t, const char*) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& e : member) a.push_back(write_fields(e));
    j_[name] = std::move(a);
  }
  void variants(const char* table, nlohmann::json& member, const char*, const std::map<std::string, Schema>&,
                const char*) {
    j_[table] = member;
  }

 private:
  nlohmann::json& j_;
};

template <class C>
Schema schema_of() {
  Schema s;
  C defaults{};
  SchemaVisitor v(s);
  defaults.fields(v);
  return s;
}

template <class C>
C read_fields(const nlohmann::json& table, const std::string& path) {
  C c{};
  ReadVisitor v(table, path);
  c.fields(v);
  return c;
}

template <class C>
nlohmann::json write_fields(const C& c) {
  nlohmann::json j = nlohmann::json::object();
  WriteVisitor v(j);
  const_cast<C&>(c).fields(v);  // the write visitor only reads the members
  return j;
}

}  // namespace ihlab
