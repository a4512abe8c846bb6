#include "train/sweep.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/parallel.h"
#include "train/interrupt.h"
#include "train/sweep_point.h"

namespace ihlab {
namespace fs = std::filesystem;

namespace {

// A point that killed its worker process this many times is recorded as failed, not retried.
constexpr int kMaxAttempts = 3;

std::string& worker_exe() {
  static std::string exe;
  return exe;
}

}  // namespace

std::vector<StorePoint> plan_rows(const SweepPlan& plan) {
  std::vector<StorePoint> out;
  for (auto& p : plan.points) {
    StorePoint s;
    s.id = p.id;
    s.name = p.name;
    s.dir = "runs/" + p.name;
    s.overrides = p.values;
    s.config = p.resolved;
    s.config_hash = p.resolved.is_null() ? "" : fnv1a_hex(p.resolved.dump());
    s.seed = p.seed;
    if (p.resolved.is_null()) {
      // A point whose overrides do not resolve fails at once and the sweep goes on.
      s.status = PointStatus::Failed;
      s.exit_status = 2;
      s.error = p.error;
    }
    out.push_back(std::move(s));
  }
  return out;
}

namespace {

// One line of progress: counts, rate over this session and the time left at that rate.
class Progress {
 public:
  Progress(std::string label, bool quiet) : label_(std::move(label)), quiet_(quiet), tty_(isatty(1)) {}
  void update(const StoreCounts& c, bool force = false) {
    if (quiet_) return;
    if (first_done_ < 0) first_done_ = c.done + c.failed;
    // A log gets a line per finished point; a terminal also sees points start.
    const bool changed = c.done != last_.done || c.failed != last_.failed || (tty_ && c.running != last_.running);
    if (!changed && !force) return;
    last_ = c;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
    const int now_done = c.done + c.failed - first_done_;
    std::string rate = "-", eta = "-";
    if (now_done > 0 && s > 0) {
      const double per_s = now_done / s;
      rate = fmt::format("{:.3g}/min", per_s * 60);
      const int left = int((c.pending + c.running) / per_s);
      eta = fmt::format("{}:{:02d}:{:02d}", left / 3600, left / 60 % 60, left % 60);
    }
    std::string line = fmt::format("{}: {}/{} done, {} running, {} failed, {} pending, {} points, ETA {}", label_,
                                   c.done, c.total(), c.running, c.failed, c.pending, rate, eta);
    // On a terminal one line rewrites itself; in a log each change is a line.
    if (tty_)
      fmt::print("\r{:<100}", line);
    else
      fmt::print("{}\n", line);
    std::fflush(stdout);
  }
  void end() {
    if (!quiet_ && tty_) fmt::print("\n");
  }

 private:
  std::string label_;
  bool quiet_, tty_;
  int first_done_ = -1;
  StoreCounts last_{-1, -1, -1, -1};
  std::chrono::steady_clock::time_point t0_ = std::chrono::steady_clock::now();
};

// Runs points of the store in this process until none is pending or Ctrl-C.
bool run_points_here(SweepStore& store, const std::string& out_dir, int threads, Progress* progress) {
  const std::string me = fmt::format("pid {}", getpid()), host = host_name();
  while (!interrupt_requested()) {
    std::optional<StorePoint> p = store.claim_next(me, host);
    if (!p) return true;
    if (progress) progress->update(store.counts());
    PointOutcome o = execute_point(*p, out_dir, {.threads = threads, .report = true, .quiet = true});
    store.finish(p->id, o);
    if (progress) progress->update(store.counts());
  }
  return false;
}

pid_t spawn_worker(const std::string& out_dir, const std::string& store_file, int threads) {
  const std::string& exe = sweep_worker_executable();
  std::vector<std::string> args = {exe,       "sweep",    "worker",    out_dir,
                                   "--store", store_file, "--threads", std::to_string(threads)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  pid_t pid = fork();
  IHLAB_CHECK(pid >= 0, "sweep: cannot start a worker process (fork failed)");
  if (pid == 0) {
    // Only async-signal-safe calls between fork and exec. The worker dies with the coordinator
    // (a killed sweep leaves no orphan training on a point that a rerun will hand out again), and
    // has its own process group: Ctrl-C reaches the coordinator, which forwards exactly one.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    setpgid(0, 0);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

// The local pool: `workers` processes claim points from the store; a worker that dies has its
// point put back (or failed after kMaxAttempts) and is replaced.
std::atomic<int> g_reserved_cores{0};

// Writes a worker's thread offer (write, then rename: the worker never reads half a number).
void write_thread_offer(const std::string& store_file, pid_t pid, int threads) {
  const std::string path = worker_thread_file(store_file, pid), tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << threads << "\n";
    if (!f) return;  // an offer that cannot be written leaves the worker as it is
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
}

bool run_pool(SweepStore& store, const std::string& out_dir, int workers, int threads, Progress& progress) {
  std::map<pid_t, int> children;  // pid -> threads offered (started with `threads`)
  bool forwarded = false;
  int exec_failures = 0;
  auto pending = [&] { return store.counts().pending; };
  auto top_up = [&] {
    const int want = std::min(workers, int(children.size()) + pending());
    while (!interrupt_requested() && int(children.size()) < want)
      children[spawn_worker(out_dir, store.path(), threads)] = threads;
  };
  // Work-conserving threads: with nothing left to start, the running workers share the pool's
  // cores, so that the last points of a pool do not train on one core while the others idle.
  auto share_cores = [&] {
    if (children.empty() || interrupt_requested() || pending() > 0) return;
    const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
    const int budget = std::min(workers * threads, cores - g_reserved_cores.load());
    const int n = int(children.size()), each = budget / n, rest = budget % n;
    int i = 0;
    for (auto& [child, offered] : children) {
      const int share = each + (i++ < rest ? 1 : 0);
      if (share > offered) write_thread_offer(store.path(), child, offered = share);
    }
  };
  top_up();
  while (!children.empty()) {
    if (interrupt_requested() && !forwarded) {
      for (auto& [pid, _] : children) kill(pid, SIGINT);
      forwarded = true;
    }
    // Only this pool's own children: a waitpid(-1) would also reap a child that another thread of
    // the process waits for (a reproduction's main run trains beside its variants' pool).
    int st = 0;
    pid_t pid = 0;
    for (auto& [child, _] : children)
      if ((pid = waitpid(child, &st, WNOHANG)) > 0) break;
    if (pid <= 0) {
      share_cores();
      progress.update(store.counts());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!children.erase(pid)) continue;
    std::error_code ec;
    fs::remove(worker_thread_file(store.path(), pid), ec);
    const std::string who = fmt::format("pid {}", pid);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 127) {
      IHLAB_CHECK(++exec_failures < 3, "sweep: the worker program {} could not be started", sweep_worker_executable());
    }
    if (!(WIFEXITED(st) && (WEXITSTATUS(st) == 0 || WEXITSTATUS(st) == 130))) {
      // Died mid-point (killed, out of memory, a crash): put its point back, or give up on it.
      const int code = WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
      for (auto& p : store.running_of(who)) {
        if (p.attempts >= kMaxAttempts) {
          PointOutcome o;
          o.status = PointStatus::Failed;
          o.exit_status = code;
          o.error = fmt::format("the worker process ended with status {} in each of {} attempts", code, p.attempts);
          store.finish(p.id, o);
        } else {
          store.reset_running(who);
        }
      }
      if (!interrupt_requested())
        fmt::print(stderr, "sweep: worker {} ended with status {}; its point goes back to the queue\n", who, code);
    }
    top_up();
    progress.update(store.counts());
  }
  return !interrupt_requested();
}

}  // namespace

SweepLock::SweepLock(const std::string& store) : path_(store + ".lock") {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  IHLAB_CHECK(fd_ >= 0, "sweep: cannot create the lock file {}", path_);
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[64] = {};
    ssize_t n = pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fail("sweep: another process ({}) is running the sweep in {}; wait for it or stop it first",
         n > 0 ? std::string(buf, size_t(n)) : "unknown", fs::path(store).parent_path().string());
  }
  // Who holds it, for the message above; failing to write it changes nothing else.
  std::string me = fmt::format("pid {} on {}", getpid(), host_name());
  if (ftruncate(fd_, 0) != 0 || pwrite(fd_, me.data(), me.size(), 0) < 0) me.clear();
}

SweepLock::~SweepLock() { ::close(fd_); }

int auto_workers(int requested, size_t points) {
  if (requested > 0) return requested;
  const int cores = std::max(1u, std::thread::hardware_concurrency());
  return int(std::max<size_t>(1, std::min<size_t>(size_t(cores), points)));
}

void set_sweep_worker_executable(const std::string& path) { worker_exe() = path; }

const std::string& sweep_worker_executable() {
  if (worker_exe().empty()) worker_exe() = fs::read_symlink("/proc/self/exe").string();
  return worker_exe();
}

std::string resolve_shard(const std::string& text) {
  std::string t = text;
  if (t.empty()) {
    const char* id = std::getenv("SLURM_ARRAY_TASK_ID");
    const char* n = std::getenv("SLURM_ARRAY_TASK_COUNT");
    if (!id || !n) return "";
    const char* min = std::getenv("SLURM_ARRAY_TASK_MIN");
    const long k = std::strtol(id, nullptr, 10) - (min ? std::strtol(min, nullptr, 10) : 0);
    t = fmt::format("{}/{}", k, n);
  }
  int k = -1, n = 0;
  char extra = 0;
  IHLAB_CHECK(std::sscanf(t.c_str(), "%d/%d%c", &k, &n, &extra) == 2 && n >= 1 && k >= 0 && k < n,
              "sweep: --shard '{}' must be K/N with 0 <= K < N (e.g. 3/16), or come from SLURM_ARRAY_TASK_ID and "
              "SLURM_ARRAY_TASK_COUNT",
              t);
  return fmt::format("{}/{}", k, n);
}

std::string sweep_store_file(const std::string& out_dir, const std::string& shard) {
  if (shard.empty()) return (fs::path(out_dir) / "sweep.db").string();
  int k = 0, n = 0;
  std::sscanf(shard.c_str(), "%d/%d", &k, &n);
  return (fs::path(out_dir) / fmt::format("shard-{}-of-{}.db", k, n)).string();
}

SweepRunResult run_sweep(const SweepPlan& plan, const std::string& out_dir, const SweepRunOptions& o) {
  IHLAB_CHECK(o.workers >= 1, "sweep: --workers {} must be at least 1", o.workers);
  fs::create_directories(fs::path(out_dir) / "runs");
  SweepRunResult res;
  res.store =
      o.growing_store.empty() ? sweep_store_file(out_dir, o.shard) : (fs::path(out_dir) / o.growing_store).string();
  SweepLock lock(res.store);
  SweepStore store = SweepStore::open(res.store, true);
  if (o.growing_store.empty())
    store.init(plan.definition, plan.hash, o.shard, plan_rows(plan));
  else
    store.add_points(plan.definition, plan_rows(plan));
  // This process now owns the store: whatever was running belonged to a process that is gone.
  store.reset_running();
  if (o.retry_failed) store.reset_failed();
  const int threads = o.threads >= 0 ? o.threads : (o.workers > 1 ? 1 : -1);
  Progress progress(o.label, o.quiet);
  progress.update(store.counts(), true);
  bool completed = o.workers == 1 ? run_points_here(store, out_dir, threads, &progress)
                                  : run_pool(store, out_dir, o.workers, threads, progress);
  res.counts = store.counts();
  progress.update(res.counts);
  progress.end();
  res.interrupted = !completed || interrupt_requested();
  return res;
}

std::string worker_thread_file(const std::string& store_file, long pid) {
  return fmt::format("{}.threads-{}", store_file, pid);
}

void reserve_pool_cores(int n) { g_reserved_cores.store(std::max(0, n)); }

int run_sweep_worker(const std::string& out_dir, const std::string& store_file, int threads) {
  set_thread_offer_file(worker_thread_file(store_file, long(getpid())));
  SweepStore store = SweepStore::open(store_file, false);
  return run_points_here(store, out_dir, threads, nullptr) ? 0 : 130;
}

}  // namespace ihlab
