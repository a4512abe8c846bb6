#include "train/sweep_shards.h"

#include <filesystem>
#include <map>

#include <fmt/format.h>

#include "core/error.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

int progress_rank(PointStatus s) {
  switch (s) {
    case PointStatus::Done: return 3;
    case PointStatus::Failed: return 2;
    case PointStatus::Running: return 1;
    case PointStatus::Pending: return 0;
  }
  return 0;
}

// The store files of a source: a .db file, or DIR/sweep.db and DIR/shard-*.db.
std::vector<std::string> stores_of(const std::string& source) {
  if (source.ends_with(".db")) {
    IHLAB_CHECK(fs::exists(source), "sweep: no store {}", source);
    return {source};
  }
  IHLAB_CHECK(fs::is_directory(source), "sweep: {} is neither a sweep directory nor a .db store", source);
  std::vector<std::string> out;
  if (fs::exists(fs::path(source) / "sweep.db")) out.push_back((fs::path(source) / "sweep.db").string());
  std::vector<std::string> shards;
  for (auto& e : fs::directory_iterator(source)) {
    const std::string n = e.path().filename().string();
    if (n.starts_with("shard-") && n.ends_with(".db")) shards.push_back(e.path().string());
  }
  std::sort(shards.begin(), shards.end());
  out.insert(out.end(), shards.begin(), shards.end());
  IHLAB_CHECK(!out.empty(), "sweep: {} holds no sweep.db and no shard-K-of-N.db (not a sweep directory)", source);
  return out;
}

// Reads the stores, checks they are one sweep and keeps each point's most advanced row; `origin`
// gets the directory each kept row's run lives in.
SweepContents collect(const std::vector<std::string>& files, std::map<int64_t, std::string>* origin) {
  SweepContents c;
  std::map<int64_t, StorePoint> best;
  for (auto& f : files) {
    SweepStore s = SweepStore::open(f, false);
    if (!s.initialized()) continue;
    const std::string hash = s.meta("plan_hash");
    if (c.stores.empty()) {
      c.plan_hash = hash;
      c.definition = s.definition();
    }
    IHLAB_CHECK(hash == c.plan_hash,
                "sweep: {} holds another sweep (plan {}) than {} (plan {}); merge only the shards "
                "of one sweep",
                f, hash, c.stores.front(), c.plan_hash);
    c.stores.push_back(f);
    for (auto& p : s.points()) {
      auto it = best.find(p.id);
      if (it == best.end() || progress_rank(p.status) > progress_rank(it->second.status)) {
        if (origin) (*origin)[p.id] = fs::path(f).parent_path().string();
        best[p.id] = std::move(p);
      }
    }
  }
  IHLAB_CHECK(!c.stores.empty(), "sweep: no started sweep in {}", files.empty() ? "(nothing)" : files.front());
  for (auto& [id, p] : best) c.points.push_back(std::move(p));
  return c;
}

}  // namespace

SweepContents read_sweep_contents(const std::string& dir) {
  // A merged or unsharded store is the whole truth when present; otherwise the shards.
  if (fs::exists(fs::path(dir) / "sweep.db")) return collect({(fs::path(dir) / "sweep.db").string()}, nullptr);
  return collect(stores_of(dir), nullptr);
}

StoreCounts merge_sweeps(const std::vector<std::string>& sources, const std::string& out_dir) {
  IHLAB_CHECK(!sources.empty(), "sweep merge: give the sweep directories (or shard .db files) to combine");
  const std::string target = (fs::path(out_dir) / "sweep.db").string();
  std::vector<std::string> files;
  for (auto& s : sources)
    for (auto& f : stores_of(s)) files.push_back(f);
  std::map<int64_t, std::string> origin;
  SweepContents c = collect(files, &origin);
  fs::create_directories(fs::path(out_dir) / "runs");
  for (auto& p : c.points) {
    // A run made in another directory (a shard on another file system) comes along.
    const fs::path from = fs::path(origin[p.id]) / p.dir, to = fs::path(out_dir) / p.dir;
    if (p.status != PointStatus::Pending && fs::exists(from) && !fs::exists(to))
      fs::copy(from, to, fs::copy_options::recursive);
    if (p.status == PointStatus::Running) p.status = PointStatus::Pending;  // nobody runs it now
  }
  SweepStore out = SweepStore::open(target, true);
  out.init(c.definition, c.plan_hash, "", c.points);
  out.put_points(c.points);
  return out.counts();
}

std::string sbatch_script(const SbatchOptions& o) {
  IHLAB_CHECK(o.array >= 1, "sweep sbatch: --array {} must be at least 1", o.array);
  IHLAB_CHECK(o.cpus >= 1, "sweep sbatch: --cpus {} must be at least 1", o.cpus);
  const std::string sweep = fs::absolute(o.sweep_file).lexically_normal().string();
  const std::string out = fs::absolute(o.out_dir).lexically_normal().string();
  std::string s = "#!/bin/bash\n";
  s += fmt::format("# Written by `ihlab sweep sbatch`: {} job-array tasks, each running one share of the sweep\n",
                   o.array);
  s += "# into its own store (OUT/shard-K-of-N.db). Submit, then merge when every task has ended:\n";
  s += fmt::format("#   jobid=$(sbatch --parsable {}/sweep.sbatch)\n", out);
  s += fmt::format("#   sbatch --dependency=afterany:$jobid --wrap '{} sweep merge {}'\n", o.ihlab, out);
  s += "# A task that is killed or times out is resumed by resubmitting (finished points are kept).\n";
  s += "#SBATCH --job-name=ihlab-sweep\n";
  s += fmt::format("#SBATCH --array=0-{}\n", o.array - 1);
  s += "#SBATCH --ntasks=1\n";
  s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", o.time);
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", o.partition);
  s += fmt::format("#SBATCH --output={}/slurm-%A_%a.out\n", out);
  s += "set -euo pipefail\n";
  // The shard comes from SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (ihlab reads them).
  s += fmt::format("exec '{}' sweep '{}' --out '{}' --threads {}\n", o.ihlab, sweep, out, o.cpus);
  return s;
}

}  // namespace ihlab
