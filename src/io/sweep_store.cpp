#include "io/sweep_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>

#include <fmt/format.h>

#include "core/error.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

constexpr const char* kFormat = "ihlab-sweep-1";

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS sweep (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  dir TEXT NOT NULL,
  overrides TEXT NOT NULL,
  config TEXT NOT NULL,
  config_hash TEXT NOT NULL,
  seed INTEGER NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  worker TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT '',
  started_at TEXT NOT NULL DEFAULT '',
  ended_at TEXT NOT NULL DEFAULT '',
  wall_s REAL NOT NULL DEFAULT 0,
  exit_status INTEGER NOT NULL DEFAULT 0,
  final TEXT NOT NULL DEFAULT '{}',
  claims TEXT NOT NULL DEFAULT '[]',
  error TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS points_status ON points (status, id);
)sql";

// A prepared statement, finalized on scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    IHLAB_CHECK(sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK, "sweep store: {}", sqlite3_errmsg(db));
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  Stmt& bind(int i, const std::string& v) {
    check(sqlite3_bind_text(s_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Stmt& bind(int i, int64_t v) {
    check(sqlite3_bind_int64(s_, i, v));
    return *this;
  }
  Stmt& bind(int i, double v) {
    check(sqlite3_bind_double(s_, i, v));
    return *this;
  }
  // True while a row is available.
  bool step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    IHLAB_CHECK(rc == SQLITE_DONE, "sweep store: {}", sqlite3_errmsg(db_));
    return false;
  }
  void reset() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  std::string text(int c) const {
    auto p = sqlite3_column_text(s_, c);
    return p ? std::string(reinterpret_cast<const char*>(p), size_t(sqlite3_column_bytes(s_, c))) : std::string();
  }
  int64_t integer(int c) const { return sqlite3_column_int64(s_, c); }
  double real(int c) const { return sqlite3_column_double(s_, c); }

 private:
  void check(int rc) { IHLAB_CHECK(rc == SQLITE_OK, "sweep store: {}", sqlite3_errmsg(db_)); }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

// Test hook for the crash-safety test: with IHLAB_TEST_KILL_IN_STORE_WRITE=N the process sends
// itself SIGKILL inside its N-th write transaction, after the writes and before COMMIT, which is
// the worst moment a real kill can hit.
void maybe_die_inside_write() {
  static const long target = [] {
    const char* e = std::getenv("IHLAB_TEST_KILL_IN_STORE_WRITE");
    return e ? std::strtol(e, nullptr, 10) : 0L;
  }();
  static long writes = 0;
  if (target > 0 && ++writes == target) std::raise(SIGKILL);
}

// One write transaction: BEGIN IMMEDIATE takes the write lock up front, so two workers that
// claim at once queue on the busy timeout instead of failing on a lock upgrade.
class WriteTx {
 public:
  explicit WriteTx(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~WriteTx() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  void commit() {
    maybe_die_inside_write();
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    char* err = nullptr;
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
    std::string msg = err ? err : "";
    sqlite3_free(err);
    IHLAB_CHECK(rc == SQLITE_OK, "sweep store: {}: {}", sql, msg);
  }
  sqlite3* db_;
  bool done_ = false;
};

nlohmann::json parse_json_column(const std::string& text, const char* column, int64_t id) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  IHLAB_CHECK(!j.is_discarded(), "sweep store: point {} column '{}' is not JSON: {}", id, column, text.substr(0, 80));
  return j;
}

constexpr const char* kColumns =
    "id, name, dir, overrides, config, config_hash, seed, status, attempts, worker, host, started_at, ended_at, "
    "wall_s, exit_status, final, claims, error";

StorePoint read_point(const Stmt& s) {
  StorePoint p;
  p.id = s.integer(0);
  p.name = s.text(1);
  p.dir = s.text(2);
  p.overrides = parse_json_column(s.text(3), "overrides", p.id);
  p.config = parse_json_column(s.text(4), "config", p.id);
  p.config_hash = s.text(5);
  p.seed = s.integer(6);
  p.status = parse_point_status(s.text(7));
  p.attempts = int(s.integer(8));
  p.worker = s.text(9);
  p.host = s.text(10);
  p.started_at = s.text(11);
  p.ended_at = s.text(12);
  p.wall_s = s.real(13);
  p.exit_status = int(s.integer(14));
  p.final_metrics = parse_json_column(s.text(15), "final", p.id);
  p.claims = parse_json_column(s.text(16), "claims", p.id);
  p.error = s.text(17);
  return p;
}

void bind_point(Stmt& s, const StorePoint& p) {
  s.bind(1, p.id)
      .bind(2, p.name)
      .bind(3, p.dir)
      .bind(4, p.overrides.dump())
      .bind(5, p.config.dump())
      .bind(6, p.config_hash)
      .bind(7, p.seed)
      .bind(8, std::string(to_string(p.status)))
      .bind(9, int64_t(p.attempts))
      .bind(10, p.worker)
      .bind(11, p.host)
      .bind(12, p.started_at)
      .bind(13, p.ended_at)
      .bind(14, p.wall_s)
      .bind(15, int64_t(p.exit_status))
      .bind(16, p.final_metrics.dump())
      .bind(17, p.claims.dump())
      .bind(18, p.error);
}

}  // namespace

std::string_view to_string(PointStatus s) {
  switch (s) {
    case PointStatus::Pending: return "pending";
    case PointStatus::Running: return "running";
    case PointStatus::Done: return "done";
    case PointStatus::Failed: return "failed";
  }
  return "pending";
}

PointStatus parse_point_status(std::string_view s) {
  for (auto v : {PointStatus::Pending, PointStatus::Running, PointStatus::Done, PointStatus::Failed})
    if (to_string(v) == s) return v;
  throw Error(fmt::format("sweep store: status '{}' is not one of pending, running, done, failed", s));
}

nlohmann::json outcome_to_json(const PointOutcome& o) {
  return {{"status", to_string(o.status)}, {"exit_status", o.exit_status}, {"wall_s", o.wall_s},
          {"final", o.final_metrics},      {"claims", o.claims},           {"error", o.error}};
}

PointOutcome outcome_from_json(const nlohmann::json& j) {
  PointOutcome o;
  o.status = parse_point_status(j.at("status").get<std::string>());
  o.exit_status = j.at("exit_status").get<int>();
  o.wall_s = j.at("wall_s").get<double>();
  o.final_metrics = j.at("final");
  o.claims = j.at("claims");
  o.error = j.at("error").get<std::string>();
  return o;
}

std::string fnv1a_hex(std::string_view text) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : text) h = (h ^ c) * 1099511628211ull;
  return fmt::format("{:016x}", h);
}

std::string utc_now_iso() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}.{:03d}Z", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                     tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms));
}

std::string host_name() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0) return "unknown";
  return buf.data();
}

std::string store_path(const std::string& dir_or_file) {
  if (dir_or_file.size() > 3 && dir_or_file.ends_with(".db")) return dir_or_file;
  return (fs::path(dir_or_file) / "sweep.db").string();
}

SweepStore SweepStore::open(const std::string& path_in, bool create) {
  const std::string path = store_path(path_in);
  IHLAB_CHECK(create || fs::exists(path), "sweep store: no {} (is this a sweep directory?)", path);
  if (create && fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    throw Error(fmt::format("sweep store: cannot open {}: {}", path, msg));
  }
  SweepStore s(db, path);
  // Workers of one machine wait for each other's short transactions rather than fail.
  sqlite3_busy_timeout(db, 120000);
  s.exec("PRAGMA journal_mode=WAL");
  // FULL: a committed transaction survives power loss too, not only a killed process.
  s.exec("PRAGMA synchronous=FULL");
  s.exec(kSchema);
  s.read_shard();
  return s;
}

SweepStore::SweepStore(SweepStore&& o) noexcept
    : db_(o.db_), path_(std::move(o.path_)), shard_k_(o.shard_k_), shard_n_(o.shard_n_) {
  o.db_ = nullptr;
}
SweepStore& SweepStore::operator=(SweepStore&& o) noexcept {
  std::swap(db_, o.db_);
  std::swap(path_, o.path_);
  std::swap(shard_k_, o.shard_k_);
  std::swap(shard_n_, o.shard_n_);
  return *this;
}

void SweepStore::read_shard() {
  const std::string sh = meta("shard");
  shard_k_ = shard_n_ = 0;
  if (sh.empty()) return;
  IHLAB_CHECK(std::sscanf(sh.c_str(), "%d/%d", &shard_k_, &shard_n_) == 2 && shard_n_ > 0 && shard_k_ >= 0 &&
                  shard_k_ < shard_n_,
              "sweep store {}: shard '{}' is not K/N", path_, sh);
}

std::string SweepStore::share_sql() const {
  return shard_n_ > 0 ? fmt::format(" AND id % {} = {}", shard_n_, shard_k_) : std::string();
}
SweepStore::~SweepStore() { sqlite3_close(db_); }

void SweepStore::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  std::string msg = err ? err : "";
  sqlite3_free(err);
  IHLAB_CHECK(rc == SQLITE_OK, "sweep store {}: {}", path_, msg);
}

std::string SweepStore::meta(const std::string& key) {
  Stmt s(db_, "SELECT value FROM sweep WHERE key = ?");
  s.bind(1, key);
  return s.step() ? s.text(0) : std::string();
}

bool SweepStore::initialized() { return !meta("definition").empty(); }

nlohmann::json SweepStore::definition() {
  std::string d = meta("definition");
  IHLAB_CHECK(!d.empty(), "sweep store {}: no sweep definition (the sweep never started)", path_);
  return nlohmann::json::parse(d);
}

void SweepStore::init(const nlohmann::json& definition, const std::string& plan_hash, const std::string& shard,
                      const std::vector<StorePoint>& points) {
  WriteTx tx(db_);
  Stmt get(db_, "SELECT value FROM sweep WHERE key = 'plan_hash'");
  if (get.step()) {
    const std::string old = get.text(0);
    IHLAB_CHECK(old == plan_hash,
                "sweep: {} holds another sweep (plan {} against this one's {}: different axes, seeds or base "
                "config); give a fresh --out, or delete the directory",
                path_, old, plan_hash);
    Stmt sh(db_, "SELECT value FROM sweep WHERE key = 'shard'");
    const std::string old_shard = sh.step() ? sh.text(0) : "";
    IHLAB_CHECK(old_shard == shard, "sweep: {} is the store of shard '{}', not of shard '{}'", path_, old_shard, shard);
    return;  // rolled back: nothing to change
  }
  Stmt put(db_, "INSERT INTO sweep (key, value) VALUES (?, ?)");
  for (auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"format", kFormat},
                                                                       {"definition", definition.dump()},
                                                                       {"plan_hash", plan_hash},
                                                                       {"shard", shard},
                                                                       {"created", utc_now_iso()}}) {
    put.bind(1, k).bind(2, v);
    put.step();
    put.reset();
  }
  Stmt ins(db_, fmt::format("INSERT INTO points ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kColumns).c_str());
  for (auto& p : points) {
    bind_point(ins, p);
    ins.step();
    ins.reset();
  }
  tx.commit();
  read_shard();
}

std::vector<StorePoint> SweepStore::add_points(const nlohmann::json& definition,
                                               const std::vector<StorePoint>& points) {
  {
    WriteTx tx(db_);
    Stmt has(db_, "SELECT value FROM sweep WHERE key = 'definition'");
    if (!has.step()) {
      Stmt put(db_, "INSERT INTO sweep (key, value) VALUES (?, ?)");
      for (auto& [k, v] : std::vector<std::pair<std::string, std::string>>{{"format", kFormat},
                                                                           {"definition", definition.dump()},
                                                                           {"plan_hash", "growing"},
                                                                           {"shard", ""},
                                                                           {"created", utc_now_iso()}}) {
        put.bind(1, k).bind(2, v);
        put.step();
        put.reset();
      }
    }
    Stmt find(db_, "SELECT config_hash FROM points WHERE name = ?");
    Stmt next(db_, "SELECT COALESCE(MAX(id) + 1, 0) FROM points");
    Stmt ins(db_,
             fmt::format("INSERT INTO points ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kColumns).c_str());
    for (auto p : points) {
      find.bind(1, p.name);
      if (find.step()) {
        IHLAB_CHECK(find.text(0) == p.config_hash,
                    "sweep store {}: the run '{}' there was made with another configuration (hash {} against {}); "
                    "give a fresh --out",
                    path_, p.dir, find.text(0), p.config_hash);
        find.reset();
        continue;
      }
      find.reset();
      next.step();
      p.id = next.integer(0);
      next.reset();
      bind_point(ins, p);
      ins.step();
      ins.reset();
    }
    tx.commit();
  }
  std::vector<StorePoint> out;
  auto all = this->points();
  for (auto& p : points)
    for (auto& a : all)
      if (a.name == p.name) out.push_back(a);
  return out;
}

std::optional<StorePoint> SweepStore::claim_next(const std::string& worker, const std::string& host) {
  WriteTx tx(db_);
  Stmt next(db_,
            fmt::format("SELECT {} FROM points WHERE status = 'pending'{} ORDER BY id LIMIT 1", kColumns, share_sql())
                .c_str());
  if (!next.step()) return std::nullopt;
  StorePoint p = read_point(next);
  p.status = PointStatus::Running;
  p.attempts += 1;
  p.worker = worker;
  p.host = host;
  p.started_at = utc_now_iso();
  p.ended_at.clear();
  Stmt up(db_,
          "UPDATE points SET status = 'running', attempts = ?, worker = ?, host = ?, started_at = ?, ended_at = '' "
          "WHERE id = ?");
  up.bind(1, int64_t(p.attempts)).bind(2, worker).bind(3, host).bind(4, p.started_at).bind(5, p.id);
  up.step();
  tx.commit();
  return p;
}

void SweepStore::finish(int64_t id, const PointOutcome& o) {
  WriteTx tx(db_);
  Stmt up(db_,
          "UPDATE points SET status = ?, exit_status = ?, wall_s = ?, final = ?, claims = ?, error = ?, ended_at = ? "
          "WHERE id = ?");
  up.bind(1, std::string(to_string(o.status)))
      .bind(2, int64_t(o.exit_status))
      .bind(3, o.wall_s)
      .bind(4, o.final_metrics.dump())
      .bind(5, o.claims.dump())
      .bind(6, o.error)
      .bind(7, utc_now_iso())
      .bind(8, id);
  up.step();
  tx.commit();
}

int SweepStore::reset_running(const std::string& worker) {
  WriteTx tx(db_);
  Stmt up(db_, worker.empty() ? "UPDATE points SET status = 'pending' WHERE status = 'running'"
                              : "UPDATE points SET status = 'pending' WHERE status = 'running' AND worker = ?");
  if (!worker.empty()) up.bind(1, worker);
  up.step();
  int n = sqlite3_changes(db_);
  tx.commit();
  return n;
}

int SweepStore::reset_failed() {
  WriteTx tx(db_);
  Stmt up(db_, "UPDATE points SET status = 'pending', error = '', exit_status = 0 WHERE status = 'failed'");
  up.step();
  int n = sqlite3_changes(db_);
  tx.commit();
  return n;
}

std::vector<StorePoint> SweepStore::running_of(const std::string& worker) {
  Stmt s(db_,
         fmt::format("SELECT {} FROM points WHERE status = 'running' AND worker = ? ORDER BY id", kColumns).c_str());
  s.bind(1, worker);
  std::vector<StorePoint> out;
  while (s.step()) out.push_back(read_point(s));
  return out;
}

void SweepStore::put_points(const std::vector<StorePoint>& points) {
  WriteTx tx(db_);
  Stmt ins(
      db_,
      fmt::format("INSERT OR REPLACE INTO points ({}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", kColumns).c_str());
  for (auto& p : points) {
    bind_point(ins, p);
    ins.step();
    ins.reset();
  }
  tx.commit();
}

std::vector<StorePoint> SweepStore::points() {
  Stmt s(db_, fmt::format("SELECT {} FROM points ORDER BY id", kColumns).c_str());
  std::vector<StorePoint> out;
  while (s.step()) out.push_back(read_point(s));
  return out;
}

StoreCounts SweepStore::counts() {
  Stmt s(db_, fmt::format("SELECT status, COUNT(*) FROM points WHERE 1{} GROUP BY status", share_sql()).c_str());
  StoreCounts c;
  while (s.step()) {
    int n = int(s.integer(1));
    switch (parse_point_status(s.text(0))) {
      case PointStatus::Pending: c.pending = n; break;
      case PointStatus::Running: c.running = n; break;
      case PointStatus::Done: c.done = n; break;
      case PointStatus::Failed: c.failed = n; break;
    }
  }
  return c;
}

}  // namespace ihlab
