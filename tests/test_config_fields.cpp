// One declaration per key (io/fields.h): every key of every registered task and model, and of the
// run itself, goes table -> typed struct -> table unchanged, at its default and at a value other
// than its default. A key declared on the wrong member, or read into one it is not written from,
// changes the table and fails here.
#include <gtest/gtest.h>

#include <filesystem>

#include "io/fields.h"
#include "models/registry.h"
#include "tasks/registry.h"
#include "train/run_schema.h"
#include "train/run_spec.h"

namespace ihlab {
namespace {

using json = nlohmann::json;

// A valid value of one key that differs from its default (when the key's range allows one).
json other_value(const KeySpec& k) {
  const json& d = k.default_value;
  auto other_number = [&](double def, bool integer) -> json {
    // Prefer a bound that differs from the default; open bounds and huge ranges get a nudge.
    std::vector<double> cands;
    if (k.max && !k.max_exclusive && std::abs(*k.max) < 1e15) cands.push_back(*k.max);
    if (k.min && !k.min_exclusive && std::abs(*k.min) < 1e15) cands.push_back(*k.min);
    cands.push_back(def + 1);
    cands.push_back(def * 0.5);
    for (double c : cands) {
      bool ok = c != def;
      if (k.min) ok = ok && (k.min_exclusive ? c > *k.min : c >= *k.min);
      if (k.max) ok = ok && (k.max_exclusive ? c < *k.max : c <= *k.max);
      if (integer && c != std::floor(c)) ok = false;
      if (ok) return integer ? json(static_cast<int64_t>(c)) : json(c);
    }
    return d;
  };
  switch (k.type) {
    case KeyType::Int: return other_number(d.get<double>(), true);
    case KeyType::Float: return other_number(d.get<double>(), false);
    case KeyType::Bool: return !d.get<bool>();
    case KeyType::String:
      for (const auto& c : k.choices)
        if (c != d.get<std::string>()) return c;
      return k.choices.empty() ? json(d.get<std::string>() + "x") : d;
    case KeyType::IntList: {
      json a = json::array();
      a.push_back(other_number(d.empty() ? 0.0 : d[0].get<double>(), true));
      return a;
    }
    case KeyType::FloatList: return json::array({other_number(d.empty() ? 0.0 : d[0].get<double>(), false)});
    case KeyType::StringList: {
      json a = d;
      a.push_back(k.choices.empty() ? json("extra") : json(k.choices.back()));
      return a;
    }
  }
  return d;
}

// A raw table that sets every key of `s` to a non-default value (arrays of tables get one element).
json perturbed(const Schema& s) {
  json out = json::object();
  for (const auto& e : s.entries()) {
    switch (e.kind) {
      case Schema::Entry::Kind::Key: out[e.name] = other_value(e.spec); break;
      case Schema::Entry::Kind::Table: out[e.name] = perturbed(*e.sub); break;
      case Schema::Entry::Kind::TableArray: out[e.name] = json::array({perturbed(*e.sub)}); break;
      case Schema::Entry::Kind::Variants: break;  // the run's [task] / [model]: tested per entry
    }
  }
  return out;
}

// The smallest raw table that resolves: arrays of tables get their minimum count of empty tables.
json minimal(const Schema& s) {
  json out = json::object();
  for (const auto& e : s.entries())
    if (e.kind == Schema::Entry::Kind::TableArray && e.min_count > 0) out[e.name] = json::array({minimal(*e.sub)});
  return out;
}

int count_keys(const json& t) {
  int n = 0;
  for (const auto& [k, v] : t.items()) n += v.is_object() ? count_keys(v) : 1;
  return n;
}

TEST(ConfigFields, EveryTaskKeyRoundTrips) {
  for (const auto& e : task_registry()) {
    const json def = e.schema.resolve(minimal(e.schema));
    EXPECT_EQ(e.round_trip(def), def) << e.name << " (defaults)";
    const json other = e.schema.resolve(perturbed(e.schema));
    EXPECT_NE(other, def) << e.name;
    EXPECT_EQ(e.round_trip(other), other) << e.name << " (every key changed)";
    EXPECT_GT(count_keys(def), 0) << e.name;
  }
}

TEST(ConfigFields, EveryModelKeyRoundTrips) {
  for (const auto& e : model_registry()) {
    const json def = e.schema.resolve(minimal(e.schema));
    EXPECT_EQ(e.round_trip(def), def) << e.name << " (defaults)";
    const json other = e.schema.resolve(perturbed(e.schema));
    EXPECT_NE(other, def) << e.name;
    EXPECT_EQ(e.round_trip(other), other) << e.name << " (every key changed)";
  }
}

// The run's own keys: top level, [data], [log], [[stages]] (with [task] and [model] carried along).
TEST(ConfigFields, RunKeysRoundTrip) {
  json raw = perturbed(run_schema());
  raw["task"] = {{"name", "previous-token"}};
  raw["model"] = {{"name", "attn1"}};
  const json resolved = run_schema().resolve(raw);
  EXPECT_EQ(write_fields(read_fields<RunSpec>(resolved)), resolved);
  // And every shipped example.
  for (const auto& f : std::filesystem::directory_iterator(std::string(IHLAB_TEST_SOURCE_DIR) + "/examples")) {
    if (f.path().extension() != ".toml") continue;
    json c;
    try {
      c = run_schema().resolve(parse_toml_file(f.path().string()));
    } catch (const Error&) {
      continue;  // sweep files and other non-run TOML
    }
    EXPECT_EQ(write_fields(read_fields<RunSpec>(c)), c) << f.path();
  }
}

TEST(ConfigFields, DefaultsComeFromTheStruct) {
  const json d = run_schema().resolve(json{{"task", {{"name", "previous-token"}}},
                                           {"model", {{"name", "attn1"}}},
                                           {"stages", json::array({json{{"steps", 1}}})}});
  const RunSpec spec = run_spec_from_config(json(d));
  const StageSpec stage;
  EXPECT_EQ(spec.stages[0].optimizer.kind, stage.optimizer.kind);
  EXPECT_EQ(d["stages"][0]["optimizer"], enum_name(stage.optimizer.kind));
  EXPECT_EQ(d["data"]["train_size"], DataSpec{}.train_size);
  EXPECT_EQ(spec.dtype, Dtype::Float32);
}

TEST(ConfigFields, EnumsNameTheirChoices) {
  EXPECT_EQ(enum_names<Integrator>(), (std::vector<std::string>{"dopri5", "cvode-bdf"}));
  EXPECT_STREQ(enum_name(DataMode::Fixed), "fixed");
  EXPECT_EQ(parse_enum<StageMethod>("flow", "stages[0].method"), StageMethod::Flow);
  try {
    parse_enum<StageMethod>("ode", "stages[0].method");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(
        std::string(e.what()).find("'stages[0].method' = \"ode\" is not allowed (choose one of: optimizer, flow)"),
        std::string::npos)
        << e.what();
  }
  // The schema built from a declaration lists the enum's names as the only allowed strings.
  const Schema stage = schema_of<StageSpec>();
  const auto* method = stage.find("method");
  ASSERT_NE(method, nullptr);
  EXPECT_EQ(method->spec.choices, (std::vector<std::string>{"optimizer", "flow"}));
}

}  // namespace
}  // namespace ihlab
