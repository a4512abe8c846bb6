#pragma once
// Declarative configuration: every key is declared once (name, type, default, help, allowed
// range or choices) and that one declaration drives parsing, validation, help text, printing and
// serialization.
//
// Flow: a TOML file is parsed into raw JSON (parse_toml_file), command-line `key=value`
// overrides are applied to that raw JSON (apply_override), and Schema::resolve checks it and fills
// in defaults, giving the resolved config that the rest of the program reads. to_toml writes a
// resolved config back out (run_dir/config.toml) so that it loads to the same values.
//
// Every user-facing failure is an ihlab::Error whose message starts with "config:" and names the
// key (as a path: "task.vocab", "stages[1].lr"), the offending value and what is allowed:
//   config: unknown key 'task.vocabb' (allowed in [task] for name = "copy": length, name, vocab);
//           did you mean 'task.vocab'?
//   config: key 'stages[1].lr' = "fast" must be a number
//   config: key 'task.vocab' = 1 is out of range (allowed: 2 <= vocab <= 65536)
//   config: key 'stages[0].optimizer' = "adagrad" is not allowed (choose one of: sgd, adam, adamw)
//   config: missing required key 'task.length' (int, length >= 1): sequence length
// Mistakes in a schema itself (duplicate key, default of the wrong type) throw ihlab::Error
// starting with "config schema:" when the schema is built.
//
// Example:
//   Schema stage;
//   stage.integer("steps", 1000, "optimizer steps in this stage", 1, 1e9)
//        .real("lr", nullptr, "peak learning rate (required)", 0, 10)
//        .string("optimizer", "adamw", "update rule", {"sgd", "adam", "adamw"});
//   Schema copy;  copy.integer("vocab", 16, "vocabulary size", 2, 65536);
//   Schema sort;  sort.integer("length", 8, "list length", 1, 512);
//   Schema root;
//   root.integer("seed", 0, "random seed", 0)
//       .table("log", Schema().integer("every", 10, "log every N steps", 1))
//       .table_array("stages", stage, 1)
//       .variants("task", "name", {{"copy", copy}, {"sort", sort}}, "copy");
//   nlohmann::json cfg = load_config("run.toml", {"stages.0.lr=3e-4", "task.name=sort"}, root);
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace ihlab {

// Value types. Int values are accepted where Float is expected (and become floats in the
// resolved config); floats are never accepted where Int is expected, even when whole.
enum class KeyType { Int, Float, Bool, String, IntList, FloatList, StringList };

// "int", "float", "bool", "string", "list of int", "list of float", "list of string".
const char* key_type_name(KeyType t);

struct KeySpec {
  std::string key;  // relative to its table, e.g. "vocab"; letters, digits, _ and -
  KeyType type = KeyType::Int;
  nlohmann::json default_value;  // null = required; for an empty list use json::array()
  std::string help;
  std::optional<double> min, max;  // bounds for numbers and for each element of a number list
  bool min_exclusive = false;      // bounds are inclusive unless these are set (e.g. lr > 0)
  bool max_exclusive = false;
  std::vector<std::string> choices;  // allowed strings for String / StringList (empty = any)
};

// The keys allowed in one TOML table (the top level is a table too), with nested tables, arrays
// of tables ([[stages]]) and variant tables ([task] whose keys depend on task.name).
class Schema {
 public:
  // Declares a key. Throws "config schema: ..." for a duplicate or malformed name, a default of the
  // wrong type or out of its own range/choices, bounds on a non-number or choices on a non-string.
  Schema& add(KeySpec spec);

  // Shorthands for add(). `def` = nullptr makes the key required. Lists take e.g. {64, 64} or
  // {"a", "b"}; write nlohmann::json::array() for an empty default list ({} would mean null).
  Schema& integer(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min = {},
                  std::optional<double> max = {});
  Schema& real(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min = {},
               std::optional<double> max = {});
  Schema& boolean(const std::string& key, nlohmann::json def, const std::string& help);
  Schema& string(const std::string& key, nlohmann::json def, const std::string& help,
                 std::vector<std::string> choices = {});
  Schema& int_list(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min = {},
                   std::optional<double> max = {});
  Schema& real_list(const std::string& key, nlohmann::json def, const std::string& help, std::optional<double> min = {},
                    std::optional<double> max = {});
  Schema& string_list(const std::string& key, nlohmann::json def, const std::string& help,
                      std::vector<std::string> choices = {});

  // Nested table [name]. When absent from the input it resolves to its defaults (an error if it
  // has required keys).
  Schema& table(const std::string& name, Schema sub, const std::string& help = "");
  // Array of tables [[name]]; each element is resolved against `element`. Absent = no elements.
  Schema& table_array(const std::string& name, Schema element, std::size_t min_count = 0, const std::string& help = "");
  // Table [table] whose keys depend on the string key `selector` inside it: with name = "copy" the
  // table is resolved against by_value["copy"]. The selector is declared automatically (String,
  // choices = the variant names, default = default_variant, required when that is empty) and must
  // not be declared in the variant schemas. Keys of another variant are rejected as unknown.
  Schema& variants(const std::string& table, const std::string& selector, std::map<std::string, Schema> by_value,
                   std::string default_variant = "", const std::string& help = "");

  // Checks `raw` (parsed TOML plus overrides; null counts as an empty table) and returns it with
  // defaults filled in: types (ints promoted to floats where floats are expected), ranges,
  // choices, required keys, unknown keys (with an edit-distance suggestion), table-array sizes.
  nlohmann::json resolve(const nlohmann::json& raw) const;

  // Every key with its type, default, range/choices and help, grouped by table; for `--help`.
  std::string help_text() const;

  // --- introspection (used by resolve/help_text; also usable by callers) ---
  struct Entry {
    enum class Kind { Key, Table, TableArray, Variants };
    Kind kind = Kind::Key;
    std::string name;  // key or table name
    std::string help;
    KeySpec spec;                                                   // Key: the key; Variants: the selector key
    std::shared_ptr<const Schema> sub;                              // Table, TableArray (element schema)
    std::size_t min_count = 0;                                      // TableArray
    std::map<std::string, std::shared_ptr<const Schema>> variants;  // Variants, by selector value
  };
  const std::vector<Entry>& entries() const { return entries_; }
  const Entry* find(const std::string& name) const;  // nullptr when not declared

 private:
  void add_entry(Entry e);
  std::vector<Entry> entries_;
};

// TOML → JSON: integers stay integers, floats stay floats; arrays, tables and arrays of tables map
// to JSON arrays and objects; dates and times become strings. A syntax error throws ihlab::Error
// "config: <source>:<line>:<column>: <toml++'s description>"; a file that cannot be read throws too.
nlohmann::json parse_toml_file(const std::string& path);
nlohmann::json parse_toml_string(const std::string& text, const std::string& source_name = "<string>");

// Applies one "a.b.c=value" override to raw (unresolved) JSON, creating missing tables on the way.
// The value is read as a TOML value (3, 1e-3, true, "str", [1, 2], {a = 1}); when that fails it is
// taken as a bare string with surrounding spaces trimmed, so model.name=gih works (a string that
// looks like a number or boolean must be quoted: run.tag="2024"). Elements of arrays (arrays of
// tables and lists) are addressed by index: stages.1.lr=0.5 or stages[1].lr=0.5; the index must
// exist (an all-digit segment is an index unless the value there is a table). A malformed assignment, an index out of
// range or a path through a non-table throws ihlab::Error naming the override.
void apply_override(nlohmann::json& raw, const std::string& assignment);

// Writes a resolved config as TOML such that resolve(parse_toml_string(to_toml(x))) == x (same
// values and the same int/float kinds). Plain keys come first, then [tables], then [[arrays]].
// Throws ihlab::Error for a null value (TOML has none).
std::string to_toml(const nlohmann::json& resolved);

// One value in TOML inline syntax: 3, 0.001, 2.0, "a\"b", [1, 2], { a = 1 }. Used by to_toml,
// help_text and error messages. null is shown as `null`, which is not TOML (to_toml rejects it).
std::string toml_value(const nlohmann::json& value);

// parse_toml_file(path), then each override in order, then schema.resolve.
nlohmann::json load_config(const std::string& path, const std::vector<std::string>& overrides, const Schema& schema);

}  // namespace ihlab
