// Fuzzes reading a configuration (io/config_toml.cpp, io/config_schema.cpp), as `ihlab train
// run.toml key=value...` does: parse_toml_string, apply_override, Schema::resolve, and to_toml,
// the writer of a run's config.toml. The input is TOML text, optionally followed by a line "%%"
// and one override per line.
// Built twice: fuzz_config resolves against the real run schema (train/run_schema.h) and builds
// the run spec from it, so it needs the whole library; fuzz_toml (IHLAB_FUZZ_LOCAL_SCHEMA)
// resolves against a small schema below that uses every kind of entry, and needs only io/.
// Properties: a parsed document written with to_toml parses back to the same values and types,
// and so does a resolved configuration (config.toml is what `ihlab train --resume` reads).
#include "fuzz_util.h"
#include "core/error.h"
#include "io/config.h"
#ifndef IHLAB_FUZZ_LOCAL_SCHEMA
#include "train/run_schema.h"
#include "train/run_spec.h"
#endif

namespace {

using namespace ihlab;
using json = nlohmann::json;

#ifdef IHLAB_FUZZ_LOCAL_SCHEMA
Schema make_schema() {
  Schema stage;
  stage.string("name", "train", "stage name")
      .real("lr", nullptr, "learning rate", 0, 10)
      .integer("steps", 10, "steps", 1, 1e9)
      .string("optimizer", "adam", "update rule", {"sgd", "adam", "adamw"})
      .string_list("train", json::array({"all"}), "groups", {"all", "attn", "mlp"})
      .boolean("nesterov", false, "Nesterov momentum");
  Schema copy;
  copy.integer("vocab", 16, "vocabulary size", 2, 65536).int_list("parents", json::array({-1}), "offsets", -64, -1);
  Schema sort;
  sort.integer("length", nullptr, "list length", 1, 512).real_list("weights", json::array(), "weights", 0, 1);
  KeySpec alpha;
  alpha.key = "alpha", alpha.type = KeyType::Float, alpha.default_value = 0.5, alpha.help = "concentration";
  alpha.min = 0.0, alpha.max = 1.0, alpha.min_exclusive = true, alpha.max_exclusive = true;
  Schema root;
  root.string("name", "run", "run name")
      .integer("seed", 0, "seed", 0, 9.007199254740992e15)
      .add(alpha)
      .table("log", Schema().integer("every", 10, "log every N steps", 1).boolean("geometric", false, "geometric"))
      .table_array("stages", stage, 1)
      .variants("task", "name", {{"copy", copy}, {"sort", sort}}, "copy");
  return root;
}
#else
Schema make_schema() { return run_schema(); }
#endif

const Schema& schema() {
  static const Schema s = make_schema();
  return s;
}

// to_toml(x) must parse back to x.
void check_round_trip(const json& x, const char* what) {
  const std::string written = to_toml(x);
  json again;
  try {
    again = parse_toml_string(written, "to_toml output");
  } catch (const Error& e) {
    std::fprintf(stderr, "%s: to_toml wrote TOML that does not parse: %s\n--- written:\n%s\n", what, e.what(),
                 written.c_str());
    IHLAB_FUZZ_CHECK(false, "to_toml output does not parse");
  }
  if (!fuzz::same_json(x, again)) {
    std::fprintf(stderr, "%s: to_toml + parse_toml_string changed it\n--- written:\n%s\n", what, written.c_str());
    IHLAB_FUZZ_CHECK(false, "to_toml output does not read back the same");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(fuzz::as_text(data, size));
  const size_t marker = input.find("\n%%\n");
  const std::string text = input.substr(0, marker);
  json raw;
  try {
    raw = parse_toml_string(text, "fuzz.toml");
  } catch (const Error&) {
    return 0;
  }
  IHLAB_FUZZ_CHECK(raw.is_object(), "parse_toml_string returned something other than a table");
  check_round_trip(raw, "parsed document");

  if (marker != std::string::npos) {
    size_t start = marker + 4;
    while (start <= input.size()) {
      size_t end = input.find('\n', start);
      if (end == std::string::npos) end = input.size();
      try {
        apply_override(raw, input.substr(start, end - start));
      } catch (const Error&) {
        return 0;  // the command line is refused
      }
      start = end + 1;
    }
    check_round_trip(raw, "document after overrides");
  }

  json resolved;
  try {
    resolved = schema().resolve(raw);
  } catch (const Error&) {
    return 0;
  }
  check_round_trip(resolved, "resolved config");
  IHLAB_FUZZ_CHECK(fuzz::same_json(schema().resolve(parse_toml_string(to_toml(resolved))), resolved),
                   "a resolved config does not resolve to itself");
#ifndef IHLAB_FUZZ_LOCAL_SCHEMA
  try {
    (void)run_spec_from_config(resolved);
  } catch (const Error&) {
  }
#endif
  return 0;
}
