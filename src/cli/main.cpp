// ihlab command line: train, list, config. Each subcommand is documented in its --help.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <filesystem>
#include <map>

#include <unistd.h>

#include "cli/export.h"
#include "cli/sweep_cmd.h"
#include "io/config.h"
#include "io/run_dir.h"
#include "models/registry.h"
#include "report/report.h"
#include "reproduce/reproduction.h"
#include "reproduce/seeds.h"
#include "tasks/registry.h"
#include "train/data_parallel.h"
#include "train/interrupt.h"
#include "train/run.h"
#include "train/run_schema.h"
#include "train/sweep_mpi.h"

using namespace ihlab;

namespace {

// Every train/reproduce ends with a report; a failure to draw it never loses the finished run.
// `main` and `subruns` (by directory relative to DIR) are what this process just produced: their
// reports take the summary and metrics from memory.
void report_after_run(const std::string& dir, const ReportInputs& main,
                      const std::map<std::string, RunResult>& subruns = {}) {
  try {
    // Runs that a reproduction or sweep made beside the main one (summary.json "runs", and a
    // reproduction's "controls") get their own report first (without figures: quick), so the
    // links in the main report work.
    nlohmann::json summary = main.summary ? summary_to_json(*main.summary) : read_json(dir + "/summary.json");
    nlohmann::json beside = summary.value("runs", nlohmann::json::array());
    for (auto& c : summary.value("controls", nlohmann::json::array())) beside.push_back(c);
    for (auto& r : beside) {
      const std::string rel = r.value("dir", "");
      std::string sub = dir + "/" + rel;
      if (!std::filesystem::exists(sub + "/metrics.csv") || std::filesystem::exists(sub + "/report.html")) continue;
      ReportInputs in;
      if (auto it = subruns.find(rel); it != subruns.end()) in = {&it->second.summary, &it->second.metrics};
      write_report(sub, {.figures = false, .quiet = true}, in);
    }
    ReportResult r = write_report(dir, {.figures = true, .quiet = true}, main);
    for (auto& w : r.warnings) fmt::print(stderr, "ihlab: warning: {}\n", w);
    fmt::print("report: {} (figures in {}/figures)\n", r.html, dir);
  } catch (const std::exception& e) {
    fmt::print(stderr, "ihlab: warning: the report was not written: {}\n", e.what());
  }
}

int cmd_report(const std::string& dir, bool no_figures) {
  ReportResult r = write_report(dir, {.figures = !no_figures, .quiet = false});
  for (auto& w : r.warnings) fmt::print(stderr, "ihlab: warning: {}\n", w);
  fmt::print("report: {}\n", r.html);
  return 0;
}

std::string command_line(int argc, char** argv) {
  std::string c = "ihlab";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    bool plain = a.find_first_of(" \t\"'$`\\") == std::string::npos && !a.empty();
    c += " " + (plain ? a : "'" + a + "'");
  }
  return c;
}

// `mpirun -np P ihlab train ...`: data-parallel over the ranks (train/data_parallel.h). Rank 0
// writes DIR; every other rank runs the same steps into a scratch copy (for --resume, a copy of
// DIR, so that it resumes from the same checkpoint), removed when it ends.
int cmd_train_mpi(const nlohmann::json& resolved, const std::string& out, TrainOptions opt) {
  MpiWorld world;
  opt.data_parallel = world.dp();
  const int rank = opt.data_parallel.rank;
  std::string dir = out;
  if (rank != 0) {
    namespace fs = std::filesystem;
    dir = (fs::temp_directory_path() / fmt::format("ihlab-rank{}-{}", rank, ::getpid())).string();
    fs::remove_all(dir);
    if (opt.resume) fs::copy(out, dir, fs::copy_options::recursive);
    opt.quiet = true;
  }
  RunResult r = run_config(resolved, dir, opt);
  if (rank != 0) {
    std::filesystem::remove_all(dir);
  } else {
    print_run_summary(r.summary, out);
    report_after_run(out, {&r.summary, &r.metrics});
  }
  if (r.summary.status == RunStatus::Interrupted) return 130;
  if (r.summary.status == RunStatus::Diverged) return 3;
  return 0;
}

int cmd_train(const std::string& config, const std::vector<std::string>& overrides, std::string out,
              const std::string& resume, const std::string& command) {
  nlohmann::json resolved;
  if (!resume.empty()) {
    IHLAB_CHECK(config.empty() && overrides.empty(),
                "train --resume DIR continues a run with its own config.toml; give no CONFIG or overrides");
    out = resume;
    resolved = load_config(resume + "/config.toml", {}, run_schema());
  } else {
    IHLAB_CHECK(!config.empty(), "train: a CONFIG file is required (or --resume DIR)");
    IHLAB_CHECK(!out.empty(), "train: --out DIR is required");
    resolved = load_config(config, overrides, run_schema());
  }
  install_interrupt_handler();
  TrainOptions opt;
  opt.resume = !resume.empty();
  opt.command = command;
  if (mpi_launched()) return cmd_train_mpi(resolved, out, opt);
  RunResult r = run_config(resolved, out, opt);
  print_run_summary(r.summary, out);
  report_after_run(out, {&r.summary, &r.metrics});
  if (r.summary.status == RunStatus::Interrupted) return 130;
  if (r.summary.status == RunStatus::Diverged) return 3;
  return 0;
}

int cmd_list() {
  fmt::print("tasks:\n");
  for (auto& t : task_registry()) fmt::print("  {:<20} {}\n", t.name, t.description);
  fmt::print("models:\n");
  for (auto& m : model_registry()) fmt::print("  {:<20} {}\n", m.name, m.description);
  fmt::print("reproductions (ihlab reproduce NAME --out DIR [--quick]):\n");
  for (auto& r : reproduction_registry())
    fmt::print("  {:<26} {} [{}; {}]\n", r.name, r.description, r.paper, r.runtime);
  return 0;
}

int cmd_reproduce(const std::string& name, const std::string& out, const ReproduceOptions& o) {
  IHLAB_CHECK(!out.empty(), "reproduce: --out DIR is required");
  install_interrupt_handler();
  ReproResult r = run_reproduction(name, out, o);
  print_run_summary(r.run.summary, out);
  std::map<std::string, RunResult> subruns;
  for (auto& [n, v] : r.variants) subruns.emplace("runs/" + n, std::move(v));
  report_after_run(out, {&r.run.summary, &r.run.metrics}, subruns);
  if (!r.run.finished()) return r.run.summary.status == RunStatus::Interrupted ? 130 : 3;
  fmt::print("\n{} claims:\n{}", name, claims_table(r.claims));
  if (!r.controls.empty()) fmt::print("\nnegative controls:\n{}", controls_table(r.controls));
  fmt::print("{}\n", r.all_pass() ? "all claims held" : "SOME CLAIMS DID NOT HOLD");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ihlab: a laboratory for the training dynamics of induction heads"};
  app.require_subcommand(1);

  std::string config, out, resume;
  std::vector<std::string> overrides;
  auto* train = app.add_subcommand("train", "Train a model from a TOML config and write a run directory");
  train->add_option("config", config, "TOML configuration file (see `ihlab config`)");
  train->add_option("overrides", overrides, "key=value overrides, e.g. stages.0.lr=0.01 task.vocab=16");
  train->add_option("--out", out, "run directory to create (config.toml, metrics.csv, summary.json, checkpoints/)");
  train->add_option("--resume", resume, "continue the run in this directory from its latest checkpoint");
  train->footer(
      "Ctrl-C saves a checkpoint and exits (status 130); `ihlab train --resume DIR` continues bit-identically.\n"
      "Exit status: 0 finished, 2 bad input, 3 diverged, 130 interrupted.");

  std::string repro_name;
  ReproduceOptions ropt;
  ropt.workers = 0;  // one worker per core unless --workers says otherwise
  auto* repro = app.add_subcommand("reproduce", "Reproduce a paper's claims and check them one by one");
  repro->add_option("name", repro_name, "reproduction (see `ihlab list`)")->required();
  repro->add_option("overrides", ropt.overrides, "key=value overrides of the embedded configuration");
  repro->add_option("--out", out, "run directory to create")->required();
  repro->add_flag("--quick", ropt.quick, "a reduced version that runs in seconds");
  repro->add_flag("--evaluate-only", ropt.evaluate_only,
                  "re-check the claims of the finished reproduction in --out without training");
  repro
      ->add_option("--workers", ropt.workers,
                   "train the variant runs (seeds, grid points) in N worker processes, 1 thread each, beside the "
                   "main run on one thread where they do not depend on it (default: one per core, at most one per "
                   "run; 1: everything in this process, one run after the other, with the config's threads; "
                   "results are bit-identical either way)")
      ->check(CLI::Range(1, 4096));
  repro
      ->add_option("--seeds", ropt.seeds,
                   "run the whole reproduction at K seeds (main seed + 0..K-1, in DIR/runs/seed-<s>/) and judge "
                   "each claim over them (default: the reproduction's own, 1 with --quick)")
      ->check(CLI::Range(1, 10000));
  repro->add_flag("--controls", ropt.controls,
                  "also run the negative controls: variants that must fail the claims they name");
  repro->add_option("--compat", ropt.compat, "paper (default) or code: the authors' code semantics")
      ->check(CLI::IsMember({"paper", "code"}));
  repro->footer(
      "Writes the run directory of `ihlab train` with the claims in summary.json and prints the claims table.\n"
      "Exit status: 0 ran to the end (claims may still fail: see the table), 2 bad input, 3 diverged, 130 "
      "interrupted.");

  auto sweep_cli = add_sweep_cli(app);

  std::string report_dir;
  bool no_figures = false;
  auto* report = app.add_subcommand("report", "Write DIR/report.html and paper-style figures in DIR/figures/");
  report->add_option("dir", report_dir, "run, reproduction or sweep directory")->required();
  report->add_flag("--no-figures", no_figures, "skip the SVG/PNG figures (they need python3-matplotlib)");
  report->footer("train, reproduce and sweep write the report by themselves when they finish.");

  std::string export_dir, export_format = "transformer-lens", export_out, export_checkpoint;
  auto* exp = app.add_subcommand("export", "Write a trained transformer in another library's layout");
  exp->add_option("dir", export_dir, "run directory of a `transformer` model")->required();
  exp->add_option("--format", export_format, "transformer-lens (HookedTransformer state dict + config)");
  exp->add_option("--out", export_out, "directory for model.safetensors, model.pt and config.json")->required();
  exp->add_option("--checkpoint", export_checkpoint, "checkpoint file (default: checkpoints/latest.json's)");

  app.add_subcommand("list", "List the tasks, models and reproductions");
  app.add_subcommand("config", "Print every configuration key with its type, default, allowed values and help");

  register_reproduction_points();  // sweep workers run the seeds of `reproduce --seeds`
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (app.got_subcommand("train")) return cmd_train(config, overrides, out, resume, command_line(argc, argv));
    if (app.got_subcommand("report")) return cmd_report(report_dir, no_figures);
    if (sweep_cli_parsed(*sweep_cli)) return run_sweep_cli(*sweep_cli, command_line(argc, argv));
    if (app.got_subcommand("export")) return cmd_export(export_dir, export_format, export_out, export_checkpoint);
    if (app.got_subcommand("list")) return cmd_list();
    if (app.got_subcommand("reproduce")) return cmd_reproduce(repro_name, out, ropt);
    if (app.got_subcommand("config")) {
      fmt::print("{}", run_schema().help_text());
      return 0;
    }
  } catch (const Error& e) {
    fmt::print(stderr, "ihlab: error: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "ihlab: internal error: {}\n", e.what());
    return 1;
  }
  return 0;
}
