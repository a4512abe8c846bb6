#pragma once
// The sweep store: DIR/sweep.db, one SQLite database (WAL mode) per sweep (or per Slurm shard),
// readable without ihlab by the sqlite3 shell or pandas:
//
//   sweep(key TEXT PRIMARY KEY, value TEXT)
//     format      "ihlab-sweep-1"
//     definition  JSON: the sweep as planned (base config, axes, seeds, fits; see train/sweep_spec.h)
//     plan_hash   hex FNV-1a 64 of the names and config hashes of every planned point
//     shard       "K/N" for a Slurm shard's store, "" otherwise
//     created     ISO-8601 UTC
//   points(
//     id          INTEGER PRIMARY KEY  0-based index in the sweep's expansion order
//     name        TEXT UNIQUE          run directory name; the run lives in DIR/<dir>
//     dir         TEXT                 "runs/<name>", relative to DIR
//     overrides   TEXT                 JSON object {key: value} of the swept keys (seed included)
//     config      TEXT                 the resolved configuration (JSON), what a worker trains
//     config_hash TEXT                 hex FNV-1a 64 of `config`
//     seed        INTEGER
//     status      TEXT                 pending | running | done | failed
//     attempts    INTEGER              times a worker took the point
//     worker      TEXT, host TEXT      who took it last (worker = "pid 1234" or "rank 2")
//     started_at  TEXT, ended_at TEXT  ISO-8601 UTC of the last attempt
//     wall_s      REAL                 seconds of the last attempt
//     exit_status INTEGER              0 done, 2 bad configuration, 3 diverged, 1 internal error,
//                                      128+signal when the worker process was killed
//     final       TEXT                 JSON object {metric: value} of the run's last metrics row
//     claims      TEXT                 JSON array of the run's claims (empty for plain runs)
//     error       TEXT                 why the point failed ("" otherwise))
//
// Every change is one transaction, so a process killed at any moment (SIGKILL included) leaves
// the store as it was before or after the change, never between. Concurrent processes on one
// machine share the store through SQLite's locking (BEGIN IMMEDIATE, a busy timeout); across
// machines only MPI rank 0 writes it (train/sweep_mpi.cpp), since SQLite over a network file
// system is not safe.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

struct sqlite3;

namespace ihlab {

enum class PointStatus { Pending, Running, Done, Failed };
std::string_view to_string(PointStatus s);
PointStatus parse_point_status(std::string_view s);  // throws ihlab::Error naming the value

struct StorePoint {
  int64_t id = 0;
  std::string name, dir;
  nlohmann::json overrides = nlohmann::json::object();
  nlohmann::json config;  // resolved configuration
  std::string config_hash;
  int64_t seed = 0;
  PointStatus status = PointStatus::Pending;
  int attempts = 0;
  std::string worker, host, started_at, ended_at;
  double wall_s = 0;
  int exit_status = 0;
  nlohmann::json final_metrics = nlohmann::json::object();
  nlohmann::json claims = nlohmann::json::array();
  std::string error;
};

// What running a point produced, as recorded by SweepStore::finish.
struct PointOutcome {
  PointStatus status = PointStatus::Done;  // Done, Failed, or Pending (interrupted: run it again)
  int exit_status = 0;
  double wall_s = 0;
  nlohmann::json final_metrics = nlohmann::json::object();
  nlohmann::json claims = nlohmann::json::array();
  std::string error;
};
nlohmann::json outcome_to_json(const PointOutcome& o);
PointOutcome outcome_from_json(const nlohmann::json& j);

struct StoreCounts {
  int pending = 0, running = 0, done = 0, failed = 0;
  int total() const { return pending + running + done + failed; }
};

// hex FNV-1a 64 of a text (config hashes and plan hashes).
std::string fnv1a_hex(std::string_view text);
// Now as ISO-8601 UTC with milliseconds, e.g. 2026-12-06T07:01:02.345Z.
std::string utc_now_iso();
// This machine's host name.
std::string host_name();

class SweepStore {
 public:
  // Opens DIR/sweep.db (or the file `path` itself when it ends in .db), creating the file and its
  // tables when `create`. Throws ihlab::Error naming the file and SQLite's message.
  static SweepStore open(const std::string& path, bool create);
  SweepStore(SweepStore&&) noexcept;
  SweepStore& operator=(SweepStore&&) noexcept;
  ~SweepStore();

  const std::string& path() const { return path_; }
  bool initialized();  // the sweep table has its definition
  // Writes the definition and inserts the points (status pending) in one transaction. A store
  // that already holds a definition must hold the same plan_hash (the same sweep rerun): then
  // nothing changes. Otherwise throws ihlab::Error saying the directory holds another sweep.
  void init(const nlohmann::json& definition, const std::string& plan_hash, const std::string& shard,
            const std::vector<StorePoint>& points);
  // For a store that grows (a reproduction's variant runs, added by each step that needs them):
  // records `definition` if none is there yet, and inserts each point whose name is new, with the
  // next free id. A name already there must have the same config_hash (the same run), else throws
  // ihlab::Error naming the run. Returns the stored rows of `points`, by name, in their order.
  std::vector<StorePoint> add_points(const nlohmann::json& definition, const std::vector<StorePoint>& points);
  std::string meta(const std::string& key);  // "" when absent
  nlohmann::json definition();

  // Takes the lowest pending point: status running, attempts + 1, worker, host, started_at.
  std::optional<StorePoint> claim_next(const std::string& worker, const std::string& host);
  // Records the end of an attempt on a running point.
  void finish(int64_t id, const PointOutcome& o);
  // running -> pending for every point (a new coordinator owns the store: nothing else runs), or
  // only for one worker's points (that worker died). Returns how many.
  int reset_running(const std::string& worker = "");
  // failed -> pending (--retry-failed). Returns how many.
  int reset_failed();
  // Points taken by `worker` that are still running (to find what a dead worker left).
  std::vector<StorePoint> running_of(const std::string& worker);
  // Inserts or replaces whole point rows (merging shard stores), in one transaction.
  void put_points(const std::vector<StorePoint>& points);

  std::vector<StorePoint> points();  // every point, this shard's share or not
  // This store's share: a shard store (shard "K/N") holds every planned point but claims and
  // counts only the points with id % N == K; the others stay pending there until merged.
  StoreCounts counts();
  int shard_index() const { return shard_k_; }
  int shard_count() const { return shard_n_; }  // 0: not a shard

 private:
  SweepStore(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const char* sql);
  void read_shard();
  std::string share_sql() const;  // " AND id % N = K" for a shard store, "" otherwise
  sqlite3* db_ = nullptr;
  std::string path_;
  int shard_k_ = 0, shard_n_ = 0;
};

// DIR/sweep.db for a directory; a path ending in .db is returned as it is.
std::string store_path(const std::string& dir_or_file);

}  // namespace ihlab
