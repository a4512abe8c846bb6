// Declarative configuration: schema resolution, error messages, TOML parsing, overrides, to_toml.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "core/error.h"
#include "io/config.h"

namespace ihlab {
namespace {

using json = nlohmann::json;

Schema make_schema() {
  Schema stage;
  stage.integer("steps", 100, "optimizer steps in this stage", 1, 1000000)
      .real("lr", nullptr, "peak learning rate", 0, 10)
      .string("optimizer", "adamw", "update rule", {"sgd", "adam", "adamw"})
      .table("sched", Schema()
                          .string("kind", "constant", "schedule", {"constant", "cosine"})
                          .real("warmup", 0, "warmup fraction", 0, 1));

  Schema copy;
  copy.integer("vocab", 16, "vocabulary size", 2, 65536).integer("length", 8, "sequence length", 1);
  Schema sort;
  sort.integer("length", 10, "list length", 1, 512).boolean("stable", true, "stable sort");

  Schema model;
  model.string("name", "gpt", "model name")
      .int_list("dims", {64, 64}, "layer widths", 1, 4096)
      .real_list("scales", {1, 0.5}, "per-layer scale")
      .string_list("tags", json::array(), "free-form tags")
      .string_list("acts", {"relu"}, "activations", {"relu", "gelu"});

  Schema log;
  log.integer("every", 10, "log every N steps", 1).boolean("json", false, "also write JSONL");

  Schema root;
  root.integer("seed", 0, "random seed", 0)
      .real("clip", 1, "gradient clip norm", 0)
      .string("run_name", "run", "name of the run directory")
      .table("model", model, "the network")
      .table("log", log)
      .table_array("stages", stage, 1, "training stages")
      .variants("task", "name", {{"copy", copy}, {"sort", sort}}, "copy", "which task to train on");
  return root;
}

json minimal_raw() { return json{{"stages", json::array({json{{"lr", 0.1}}})}}; }

// Runs f, expects an ihlab::Error, returns its message.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected ihlab::Error";
  return "";
}

#define EXPECT_HAS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << "message: " << (haystack)

TEST(Config, DefaultsFilled) {
  json cfg = make_schema().resolve(minimal_raw());
  EXPECT_EQ(cfg["seed"], 0);
  EXPECT_TRUE(cfg["seed"].is_number_integer());
  EXPECT_TRUE(cfg["clip"].is_number_float());  // default declared as int 1, promoted
  EXPECT_EQ(cfg["clip"].get<double>(), 1.0);
  EXPECT_EQ(cfg["run_name"], "run");
  EXPECT_EQ(cfg["model"]["dims"], json({64, 64}));
  EXPECT_TRUE(cfg["model"]["scales"][0].is_number_float());
  EXPECT_EQ(cfg["model"]["tags"], json::array());
  EXPECT_EQ(cfg["log"]["every"], 10);
  EXPECT_EQ(cfg["log"]["json"], false);
  EXPECT_EQ(cfg["task"]["name"], "copy");
  EXPECT_EQ(cfg["task"]["vocab"], 16);
  EXPECT_EQ(cfg["task"]["length"], 8);
  EXPECT_EQ(cfg["stages"].size(), 1u);
}

TEST(Config, NestedTable) {
  json raw = minimal_raw();
  raw["log"] = {{"every", 5}};
  raw["model"] = {{"dims", {8, 16, 32}}};
  json cfg = make_schema().resolve(raw);
  EXPECT_EQ(cfg["log"]["every"], 5);
  EXPECT_EQ(cfg["log"]["json"], false);
  EXPECT_EQ(cfg["model"]["dims"], json({8, 16, 32}));
  EXPECT_EQ(cfg["model"]["name"], "gpt");
}

TEST(Config, TableArrayElementDefaults) {
  json cfg = make_schema().resolve(parse_toml_string(R"(
[[stages]]
lr = 0.5
[[stages]]
lr = 0.25
steps = 7
optimizer = "sgd"
[stages.sched]
kind = "cosine"
)"));
  ASSERT_EQ(cfg["stages"].size(), 2u);
  EXPECT_EQ(cfg["stages"][0]["steps"], 100);
  EXPECT_EQ(cfg["stages"][0]["optimizer"], "adamw");
  EXPECT_EQ(cfg["stages"][0]["sched"]["kind"], "constant");
  EXPECT_EQ(cfg["stages"][1]["steps"], 7);
  EXPECT_EQ(cfg["stages"][1]["optimizer"], "sgd");
  EXPECT_EQ(cfg["stages"][1]["sched"]["kind"], "cosine");
  EXPECT_EQ(cfg["stages"][1]["sched"]["warmup"].get<double>(), 0.0);

  std::string m = error_of([] { make_schema().resolve(json::object()); });
  EXPECT_HAS(m, "'stages'");
  EXPECT_HAS(m, "0 entries");
  EXPECT_HAS(m, "at least 1");

  m = error_of([] { make_schema().resolve(json{{"stages", json::array({json{{"steps", 3}}})}}); });
  EXPECT_HAS(m, "missing required key 'stages[0].lr'");
  EXPECT_HAS(m, "0 <= lr <= 10");

  m = error_of([] { make_schema().resolve(json{{"stages", 3}}); });
  EXPECT_HAS(m, "'stages' = 3 must be an array of tables");
  m = error_of([] { make_schema().resolve(json{{"stages", {1, 2}}}); });
  EXPECT_HAS(m, "'stages[0]' = 1 must be a table");
}

TEST(Config, VariantsSelectSubSchema) {
  Schema s = make_schema();
  json raw = minimal_raw();
  raw["task"] = {{"name", "sort"}, {"length", 20}};
  json cfg = s.resolve(raw);
  EXPECT_EQ(cfg["task"]["name"], "sort");
  EXPECT_EQ(cfg["task"]["length"], 20);
  EXPECT_EQ(cfg["task"]["stable"], true);
  EXPECT_FALSE(cfg["task"].contains("vocab"));

  raw["task"] = {{"vocab", 32}};  // default variant
  cfg = s.resolve(raw);
  EXPECT_EQ(cfg["task"]["name"], "copy");
  EXPECT_EQ(cfg["task"]["vocab"], 32);
  EXPECT_FALSE(cfg["task"].contains("stable"));

  // A key of another variant is rejected, naming the variant it belongs to.
  raw["task"] = {{"name", "copy"}, {"stable", false}};
  std::string m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "unknown key 'task.stable'");
  EXPECT_HAS(m, "allowed in [task] for name = \"copy\": length, name, vocab");
  EXPECT_HAS(m, "name = \"sort\"");

  raw["task"] = {{"name", "sort"}, {"vocab", 4}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "unknown key 'task.vocab'");
  EXPECT_HAS(m, "for name = \"sort\"");

  raw["task"] = {{"name", "cpy"}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'task.name' = \"cpy\" is not allowed (choose one of: copy, sort)");
  EXPECT_HAS(m, "did you mean \"copy\"?");

  // Without a default variant the selector is required.
  Schema t;
  t.variants("task", "name", {{"a", Schema()}, {"b", Schema().integer("x", 1, "x")}});
  m = error_of([&] { t.resolve(json::object()); });
  EXPECT_HAS(m, "missing required key 'task.name'");
  EXPECT_HAS(m, "one of: a, b");
  EXPECT_EQ(t.resolve(json{{"task", {{"name", "b"}}}})["task"]["x"], 1);
}

TEST(Config, UnknownKeyMessages) {
  Schema s = make_schema();
  json raw = minimal_raw();
  raw["task"] = {{"vocabb", 3}};
  std::string m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m,
             "config: unknown key 'task.vocabb' (allowed in [task] for name = \"copy\": "
             "length, name, vocab); did you mean 'task.vocab'?");

  raw = minimal_raw();
  raw["sed"] = 3;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "unknown key 'sed'");
  EXPECT_HAS(m, "allowed at top level: clip, log, model, run_name, seed, stages, task");
  EXPECT_HAS(m, "did you mean 'seed'?");

  raw = minimal_raw();
  raw["log"] = {{"zzzzzz", 1}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "unknown key 'log.zzzzzz' (allowed in [log]: every, json)");
  EXPECT_EQ(m.find("did you mean"), std::string::npos);

  raw = minimal_raw();
  raw["stages"][0]["lrr"] = 0.1;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "unknown key 'stages[0].lrr' (allowed in [[stages]]:");
  EXPECT_HAS(m, "did you mean 'stages[0].lr'?");
}

TEST(Config, TypeRangeChoiceMessages) {
  Schema s = make_schema();
  json raw = parse_toml_string(R"(
[[stages]]
lr = 0.1
[[stages]]
lr = "fast"
)");
  std::string m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "config: key 'stages[1].lr' = \"fast\" must be a number");

  raw = minimal_raw();
  raw["task"] = {{"vocab", 1}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "config: key 'task.vocab' = 1 is out of range (allowed: 2 <= vocab <= 65536)");

  raw = minimal_raw();
  raw["stages"][0]["optimizer"] = "adagrad";
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m,
             "config: key 'stages[0].optimizer' = \"adagrad\" is not allowed "
             "(choose one of: sgd, adam, adamw)");

  raw = minimal_raw();
  raw["seed"] = -1;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'seed' = -1 is out of range (allowed: seed >= 0)");

  raw = minimal_raw();
  raw["stages"][0]["lr"] = 10.5;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'stages[0].lr' = 10.5 is out of range (allowed: 0 <= lr <= 10)");

  raw = minimal_raw();
  raw["seed"] = 1.0;  // floats are never accepted for ints
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'seed' = 1.0 must be an integer");

  raw = minimal_raw();
  raw["log"] = {{"json", "yes"}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'log.json' = \"yes\" must be true or false");

  raw = minimal_raw();
  raw["run_name"] = 5;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'run_name' = 5 must be a string");

  raw = minimal_raw();
  raw["log"] = 5;
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'log' = 5 must be a table");

  // List elements: type, range and choices, each naming the element.
  raw = minimal_raw();
  raw["model"] = {{"dims", {8, "x"}}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'model.dims[1]' = \"x\" must be an integer");
  raw["model"] = {{"dims", {8, 0}}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'model.dims[1]' = 0 is out of range (allowed: 1 <= dims[i] <= 4096)");
  raw["model"] = {{"dims", 8}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'model.dims' = 8 must be a list of integers");
  raw["model"] = {{"acts", {"relu", "tanh"}}};
  m = error_of([&] { s.resolve(raw); });
  EXPECT_HAS(m, "key 'model.acts[1]' = \"tanh\" is not allowed (choose one of: relu, gelu)");

  // Exclusive bounds.
  KeySpec k;
  k.key = "dropout";
  k.type = KeyType::Float;
  k.default_value = 0.1;
  k.min = 0;
  k.max = 1;
  k.max_exclusive = true;
  Schema d;
  d.add(k);
  m = error_of([&] { d.resolve(json{{"dropout", 1}}); });
  EXPECT_HAS(m, "key 'dropout' = 1 is out of range (allowed: 0 <= dropout < 1)");
  EXPECT_DOUBLE_EQ(d.resolve(json{{"dropout", 0}})["dropout"].get<double>(), 0.0);
}

TEST(Config, IntToFloatPromotion) {
  json raw = parse_toml_string("clip = 3\n[model]\nscales = [1, 2.5]\n[[stages]]\nlr = 1\n");
  EXPECT_TRUE(raw["clip"].is_number_integer());
  json cfg = make_schema().resolve(raw);
  EXPECT_TRUE(cfg["clip"].is_number_float());
  EXPECT_EQ(cfg["clip"].get<double>(), 3.0);
  EXPECT_TRUE(cfg["stages"][0]["lr"].is_number_float());
  EXPECT_TRUE(cfg["model"]["scales"][0].is_number_float());
  EXPECT_EQ(cfg["model"]["scales"], json({1.0, 2.5}));
}

TEST(Config, ParseTomlTypes) {
  json j = parse_toml_string(R"(
i = 3
f = 3.0
e = 1e-3
b = true
s = "hi"
l = [1, 2]
[t]
x = "y"
[[a]]
k = 1
[[a]]
k = 2
)");
  EXPECT_TRUE(j["i"].is_number_integer());
  EXPECT_TRUE(j["f"].is_number_float());
  EXPECT_DOUBLE_EQ(j["e"].get<double>(), 1e-3);
  EXPECT_EQ(j["b"], true);
  EXPECT_EQ(j["s"], "hi");
  EXPECT_EQ(j["l"], json({1, 2}));
  EXPECT_EQ(j["t"]["x"], "y");
  ASSERT_EQ(j["a"].size(), 2u);
  EXPECT_EQ(j["a"][1]["k"], 2);
}

TEST(Config, TomlSyntaxErrorHasLine) {
  std::string m = error_of([] { parse_toml_string("a = 1\nb = 2\nc = = 3\n", "bad.toml"); });
  EXPECT_HAS(m, "bad.toml:3:");
  m = error_of([] { parse_toml_string("a = 1\na = 2\n", "dup.toml"); });
  EXPECT_HAS(m, "dup.toml:2:");
}

TEST(Config, ParseFileAndLoadConfig) {
  const std::string path = ::testing::TempDir() + "ihlab_test_config.toml";
  {
    std::ofstream f(path);
    f << "seed = 7\n[task]\nname = \"sort\"\n[[stages]]\nlr = 0.1\n[[stages]]\nlr = 0.2\n";
  }
  json cfg = load_config(path, {"stages.1.lr=0.5", "task.length=3", "model.name=gih"}, make_schema());
  EXPECT_EQ(cfg["seed"], 7);
  EXPECT_EQ(cfg["task"]["name"], "sort");
  EXPECT_EQ(cfg["task"]["length"], 3);
  EXPECT_DOUBLE_EQ(cfg["stages"][1]["lr"].get<double>(), 0.5);
  EXPECT_EQ(cfg["model"]["name"], "gih");

  std::string m = error_of([&] { load_config(path, {"task.vocab=4"}, make_schema()); });
  EXPECT_HAS(m, "unknown key 'task.vocab'");
  std::remove(path.c_str());

  m = error_of([] { parse_toml_file("/nonexistent/dir/x.toml"); });
  EXPECT_HAS(m, "/nonexistent/dir/x.toml");
}

TEST(Config, Overrides) {
  json raw = minimal_raw();
  apply_override(raw, "seed=42");
  EXPECT_EQ(raw["seed"], 42);
  apply_override(raw, "clip = 1e-3");
  EXPECT_DOUBLE_EQ(raw["clip"].get<double>(), 1e-3);
  apply_override(raw, "log.json=true");
  EXPECT_EQ(raw["log"]["json"], true);
  apply_override(raw, "log.every=3");
  EXPECT_EQ(raw["log"]["every"], 3);
  apply_override(raw, "run_name=\"quoted name\"");
  EXPECT_EQ(raw["run_name"], "quoted name");
  apply_override(raw, "model.name=gih");  // bare string
  EXPECT_EQ(raw["model"]["name"], "gih");
  apply_override(raw, "model.dims=[8, 16]");
  EXPECT_EQ(raw["model"]["dims"], json({8, 16}));
  apply_override(raw, "model.dims.1=32");  // list element
  EXPECT_EQ(raw["model"]["dims"], json({8, 32}));
  apply_override(raw, "model.dims[0]=4");
  EXPECT_EQ(raw["model"]["dims"], json({4, 32}));
  apply_override(raw, "model.tags=[\"a\", \"b\"]");
  EXPECT_EQ(raw["model"]["tags"], json({"a", "b"}));
  apply_override(raw, "stages=[{lr = 0.1}, {lr = 0.2, steps = 5}]");
  ASSERT_EQ(raw["stages"].size(), 2u);
  apply_override(raw, "stages.1.lr=0.5");
  EXPECT_DOUBLE_EQ(raw["stages"][1]["lr"].get<double>(), 0.5);
  apply_override(raw, "stages[0].optimizer=sgd");
  EXPECT_EQ(raw["stages"][0]["optimizer"], "sgd");
  apply_override(raw, "stages[1].sched.kind=cosine");  // creates the sub-table
  EXPECT_EQ(raw["stages"][1]["sched"]["kind"], "cosine");
  apply_override(raw, "task.name=sort");
  apply_override(raw, "task.length=12");

  json cfg = make_schema().resolve(raw);
  EXPECT_EQ(cfg["seed"], 42);
  EXPECT_EQ(cfg["model"]["dims"], json({4, 32}));
  EXPECT_EQ(cfg["stages"][1]["steps"], 5);
  EXPECT_EQ(cfg["stages"][1]["sched"]["kind"], "cosine");
  EXPECT_EQ(cfg["task"]["length"], 12);
  EXPECT_EQ(cfg["task"]["name"], "sort");

  // Errors name the override.
  std::string m = error_of([&] { apply_override(raw, "seed"); });
  EXPECT_HAS(m, "malformed override 'seed'");
  m = error_of([&] { apply_override(raw, "=3"); });
  EXPECT_HAS(m, "malformed override '=3'");
  m = error_of([&] { apply_override(raw, "a..b=3"); });
  EXPECT_HAS(m, "malformed override 'a..b=3'");
  m = error_of([&] { apply_override(raw, "stages[x].lr=3"); });
  EXPECT_HAS(m, "malformed override 'stages[x].lr=3'");
  m = error_of([&] { apply_override(raw, "stages.5.lr=0.5"); });
  EXPECT_HAS(m, "override 'stages.5.lr=0.5'");
  EXPECT_HAS(m, "index 5 is out of range ('stages' has 2 elements)");
  m = error_of([&] { apply_override(raw, "stages[2].lr=0.5"); });
  EXPECT_HAS(m, "index 2 is out of range");
  m = error_of([&] { apply_override(raw, "seed.x=1"); });
  EXPECT_HAS(m, "override 'seed.x=1'");
  EXPECT_HAS(m, "'seed' = 42 is not a table");
  m = error_of([&] { apply_override(raw, "stages.lr=1"); });
  EXPECT_HAS(m, "'stages' is an array");
  json empty;
  m = error_of([&] { apply_override(empty, "stages.0.lr=1"); });
  EXPECT_HAS(m, "index 0 is out of range ('stages' has 0 elements)");

  // An override with a value of the wrong type is caught by resolve, naming key and value.
  json r2 = minimal_raw();
  apply_override(r2, "seed=abc");
  m = error_of([&] { make_schema().resolve(r2); });
  EXPECT_HAS(m, "key 'seed' = \"abc\" must be an integer");
}

TEST(Config, ToTomlRoundTrip) {
  Schema s = make_schema();
  json raw = parse_toml_string(R"(
seed = 123
clip = 0.1
run_name = "tricky \"name\"\\ with\ttab and ünïcode"
[model]
dims = [1, 2, 3]
scales = [1e-5, 2.0, 3, 1e300]
tags = ["x y", ""]
[task]
name = "sort"
length = 3
[[stages]]
lr = 3e-4
[[stages]]
lr = 1
steps = 9
[stages.sched]
kind = "cosine"
warmup = 0.05
)");
  json cfg = s.resolve(raw);
  std::string text = to_toml(cfg);
  json back = s.resolve(parse_toml_string(text, "roundtrip"));
  EXPECT_EQ(back, cfg) << text;
  EXPECT_EQ(back.dump(), cfg.dump()) << text;  // same int/float kinds too
  EXPECT_TRUE(back["clip"].is_number_float());
  EXPECT_HAS(text, "[[stages]]");
  EXPECT_HAS(text, "[stages.sched]");
  EXPECT_HAS(text, "[task]");

  // Defaults-only config round-trips too (empty lists, whole floats).
  json d = s.resolve(minimal_raw());
  EXPECT_EQ(s.resolve(parse_toml_string(to_toml(d))).dump(), d.dump());

  // Generic JSON: quoted keys, inline tables inside lists, empty tables.
  json g = {{"a b", 1}, {"x", json::object()}, {"mix", {1, {{"k", "v"}}}}, {"neg", -0.0}};
  EXPECT_EQ(parse_toml_string(to_toml(g)).dump(), g.dump()) << to_toml(g);

  std::string m = error_of([] { to_toml(json{{"a", nullptr}}); });
  EXPECT_HAS(m, "'a'");
}

TEST(Config, TomlValue) {
  EXPECT_EQ(toml_value(json(3)), "3");
  EXPECT_EQ(toml_value(json(2.0)), "2.0");
  EXPECT_EQ(toml_value(json(0.001)), "0.001");
  EXPECT_EQ(toml_value(json("a\"b")), "\"a\\\"b\"");
  EXPECT_EQ(toml_value(json({1, 2})), "[1, 2]");
  EXPECT_EQ(toml_value(json{{"a", 1}}), "{ a = 1 }");
}

TEST(Config, HelpText) {
  std::string h = make_schema().help_text();
  EXPECT_HAS(h, "seed = 0");
  EXPECT_HAS(h, "int, seed >= 0");
  EXPECT_HAS(h, "random seed");
  EXPECT_HAS(h, "[log]");
  EXPECT_HAS(h, "every = 10");
  EXPECT_HAS(h, "[[stages]]");
  EXPECT_HAS(h, "at least 1");
  EXPECT_HAS(h, "lr = <required>");
  EXPECT_HAS(h, "float, 0 <= lr <= 10");
  EXPECT_HAS(h, "[stages.sched]");
  EXPECT_HAS(h, "one of: sgd, adam, adamw");
  EXPECT_HAS(h, "[task]");
  EXPECT_HAS(h, "name = \"copy\"");
  EXPECT_HAS(h, "when name = \"sort\"");
  EXPECT_HAS(h, "stable sort");
  EXPECT_HAS(h, "dims = [64, 64]");
  EXPECT_HAS(h, "list of int, 1 <= dims[i] <= 4096");
}

TEST(Config, SchemaMistakes) {
  std::string m = error_of([] { Schema().integer("a", 1, "").integer("a", 2, ""); });
  EXPECT_HAS(m, "config schema: 'a' is declared twice");
  m = error_of([] { Schema().integer("a", 1.5, ""); });
  EXPECT_HAS(m, "bad default for 'a'");
  m = error_of([] { Schema().integer("a", 0, "", 1, 5); });
  EXPECT_HAS(m, "out of range");
  m = error_of([] { Schema().string("s", "x", "", {"a", "b"}); });
  EXPECT_HAS(m, "not allowed");
  m = error_of([] { Schema().integer("a.b", 1, ""); });
  EXPECT_HAS(m, "invalid key name 'a.b'");
  m = error_of([] { Schema().variants("t", "name", {{"a", Schema().integer("name", 1, "")}}); });
  EXPECT_HAS(m, "must not declare the selector");
  m = error_of([] { Schema().variants("t", "name", {{"a", Schema()}}, "zzz"); });
  EXPECT_HAS(m, "default variant \"zzz\"");
  m = error_of([] {
    KeySpec k;
    k.key = "b";
    k.type = KeyType::Bool;
    k.min = 0;
    Schema().add(k);
  });
  EXPECT_HAS(m, "cannot have bounds");
}

}  // namespace
}  // namespace ihlab
