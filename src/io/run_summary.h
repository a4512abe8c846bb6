#pragma once
// summary.json: what a run (or a sweep) ended with, in one typed record and one writer.
//
// Every summary.json is written by write_summary() from a RunSummary; nothing else writes the
// file. Schema (a JSON object; keys not listed for a kind are left out):
//
//   kind = run (a training run, a reproduction's main run or one of its variants):
//     name          string   the configuration's `name`
//     status        string   "finished" | "interrupted" | "diverged"
//     message       string   why it stopped ("" when finished)
//     steps         integer  updates done over all stages (a flow stage counts its solver steps)
//     wall_seconds  number   over all sessions of a resumed run
//     threads       integer  worker threads of the last session
//     dtype         string   "float32" | "float64"
//     seed          integer
//     final         object   {column: value} of the last metrics row; non-finite values left out
//     checkpoint    string   path of the newest checkpoint ("" if none was written)
//     claims        array    [{name, expected, basis, measured (number or null), evaluated, pass
//                            (null when not evaluated), reason (why not evaluated), detail,
//                            seeds (several runs only: {values, holding, lo, hi, rule})}]; empty
//                            until a reproduction evaluates its claims (reproduce/claims.h)
//     command       string   optional: the command line of `ihlab train`
//     reproduction  object   reproductions only: {name, paper, quick, compat, command, all_pass}
//     controls      array    reproductions run with --controls: [{name, description, dir, must_fail,
//                            failed, not_evaluated, ok}] (a section; reproduce/claims.h)
//     <section>     any      reproduction-specific results (chi_square_mi, runs, phases, note...),
//                            kept as they are and shown by the report
//   kind = sweep (`ihlab sweep`): the key "kind" = "sweep", then name, status ("finished" |
//     "incomplete"), message, command (always), claims (empty) and the sections runs
//     [{dir, overrides, status, final}] and scaling [...] (see train/sweep.h).
//
// A run's summary.json is written when training ends; a reproduction rewrites it once with its
// claims from the same in-memory record (never by reading the file back).
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace ihlab {

// How a run ended; the files hold the lower-case names.
enum class RunStatus {
  Finished,     // "finished": every stage ran to its end (or its stop_loss)
  Interrupted,  // "interrupted": Ctrl-C or a test's stop_after; resumable from the latest checkpoint
  Diverged,     // "diverged": a non-finite loss, gradient norm or parameter
  Incomplete,   // "incomplete": a sweep some of whose runs did not finish
};
std::string_view to_string(RunStatus s);
// Throws ihlab::Error naming the value and the allowed ones.
RunStatus parse_run_status(std::string_view s);
std::ostream& operator<<(std::ostream& out, RunStatus s);  // the file name (test messages)

// One entry of summary.json's "claims": what a paper says, what this run measured, and whether
// the measurement supports it.
struct Claim {
  std::string name, expected;
  double measured;
  bool pass;  // meaningful only when evaluated
  std::string detail;
  // false: the run cannot judge the claim (too short, a quantity it does not log); `reason` says
  // why. Such a claim neither holds nor fails.
  bool evaluated = true;
  std::string reason{};
  std::string basis{};  // where the threshold comes from: the paper, a measurement
  // Over several runs (seeds): the measured quantity per run, the fraction of runs where the claim
  // holds, a 95% interval of the quantity's mean, and the rule the verdict used. Empty / NaN for one run.
  std::vector<double> seed_values{};
  double holding = NAN, lo = NAN, hi = NAN;
  std::string rule{};
};
// An array of {"name", "expected", "basis", "measured", "evaluated", "pass", "reason", "detail"
// [, "seeds"]}; a non-finite measured is null, and so is pass when the claim was not evaluated.
nlohmann::json claims_to_json(const std::vector<Claim>& claims);

struct ReproductionInfo {
  std::string name, paper, compat, command;
  bool quick = false, all_pass = false;
};

struct RunSummary {
  enum class Kind { Run, Sweep };
  Kind kind = Kind::Run;
  std::string name;
  RunStatus status = RunStatus::Finished;
  std::string message;
  // kind = run only:
  int64_t steps = 0;
  double wall_seconds = 0;
  int threads = 0;
  std::string dtype;
  uint64_t seed = 0;
  std::vector<std::pair<std::string, double>> final_metrics;  // the last metrics row, in column order
  std::string checkpoint;
  std::optional<ReproductionInfo> reproduction;
  // Both kinds:
  std::string command;  // kind = run: left out of the file when empty
  std::vector<Claim> claims;
  nlohmann::json sections = nlohmann::json::object();  // further top-level keys

  bool finished() const { return status == RunStatus::Finished; }
};

nlohmann::json summary_to_json(const RunSummary& s);
// The inverse for files written by this or an earlier version (a run directory left by another
// process); unknown keys become sections. Throws ihlab::Error naming a malformed key.
RunSummary summary_from_json(const nlohmann::json& j);

// DIR/summary.json, written atomically.
void write_summary(const std::string& dir, const RunSummary& s);
// Throws ihlab::Error when DIR/summary.json is missing or malformed.
RunSummary read_summary(const std::string& dir);

}  // namespace ihlab
