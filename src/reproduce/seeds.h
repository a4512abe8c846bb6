#pragma once
// Seeds of a reproduction (`ihlab reproduce NAME --seeds K`): the whole reproduction, main run and
// variants, again at K - 1 further seeds, each a point of the reproduction's growing sweep store
// DIR/seeds.db, so --workers N runs N seeds at once, a killed run resumes and a finished seed is
// never rerun. Seed i (i >= 1) is an ordinary reproduction directory DIR/runs/seed-<seed>/ with
// its own claims and report; the main directory's claims are judged over all K seeds
// (claims.h: judge_runs, each claim's SeedRule).
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "reproduce/reproduction.h"

namespace ihlab {

// Lets execute_point run points whose config is {"reproduction": {name, quick, compat, overrides}}
// (one seed of a reproduction). Idempotent; the CLI calls it before any sweep or reproduction.
void register_reproduction_points();

struct SeedRuns {
  std::vector<std::map<std::string, Measured>> measured;  // per further seed, in seed order
  nlohmann::json runs = nlohmann::json::array();          // summary.json "seeds": [{seed, dir, status, all_pass}]
  bool interrupted = false;                               // Ctrl-C: rerun the command to resume
  bool complete = true;                                   // every seed ran to the end
};

// Runs (or reads back) seeds main_seed + 1 .. main_seed + seeds - 1 of reproduction `r` in
// DIR/runs/seed-<seed>/ and re-evaluates each one's claims (the measurement is a pure function of
// the finished runs). `o` is the main run's options (quick, compat, overrides, workers).
SeedRuns run_seed_reproductions(const Reproduction& r, const std::string& out_dir, int64_t main_seed, int seeds,
                                const ReproduceOptions& o);

}  // namespace ihlab
