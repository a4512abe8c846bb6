#include "train/sweep_mpi.h"

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "train/interrupt.h"
#include "train/sweep_point.h"

#ifdef IHLAB_HAVE_MPI
#include <mpi.h>
#endif

namespace ihlab {
namespace fs = std::filesystem;

bool mpi_launched() {
  for (auto v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS"})
    if (const char* s = std::getenv(v)) return std::strtol(s, nullptr, 10) > 1;
  return false;
}

#ifndef IHLAB_HAVE_MPI

bool mpi_available() { return false; }

MpiSweepResult run_sweep_mpi(const SweepPlan&, const std::string&, const SweepRunOptions&) {
  fail("sweep: started under mpirun, but this ihlab was built without MPI (install libopenmpi-dev and rebuild)");
}

#else

bool mpi_available() { return true; }

namespace {

enum Tag : int { kReport = 1, kAssign = 2 };

void send_json(const nlohmann::json& j, int dest, int tag) {
  const std::string s = j.dump();
  MPI_Send(s.data(), int(s.size()), MPI_CHAR, dest, tag, MPI_COMM_WORLD);
}

nlohmann::json recv_json(int source, int tag, int* from) {
  MPI_Status st;
  MPI_Probe(source, tag, MPI_COMM_WORLD, &st);
  int n = 0;
  MPI_Get_count(&st, MPI_CHAR, &n);
  std::string s(size_t(n), '\0');
  MPI_Recv(s.data(), n, MPI_CHAR, st.MPI_SOURCE, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  if (from) *from = st.MPI_SOURCE;
  return nlohmann::json::parse(s);
}

// Rank 0: answers each worker's report (its last outcome, or a hello) with the next point, or
// with stop when none is pending. Polls instead of blocking so that it neither spins a core that
// the training ranks need nor misses Ctrl-C.
SweepRunResult coordinate(const SweepPlan& plan, const std::string& out_dir, const SweepRunOptions& o, int size) {
  SweepRunResult res;
  res.store = sweep_store_file(out_dir, o.shard);
  fs::create_directories(fs::path(out_dir) / "runs");
  SweepLock lock(res.store);
  SweepStore store = SweepStore::open(res.store, true);
  store.init(plan.definition, plan.hash, o.shard, plan_rows(plan));
  store.reset_running();
  if (o.retry_failed) store.reset_failed();
  int active = size - 1;
  while (active > 0) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kReport, MPI_COMM_WORLD, &flag, &st);
    if (!flag) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
      continue;
    }
    int from = 0;
    nlohmann::json msg = recv_json(st.MPI_SOURCE, kReport, &from);
    if (msg.contains("id")) {
      PointOutcome out = outcome_from_json(msg["outcome"]);
      store.finish(msg["id"].get<int64_t>(), out);
      if (!o.quiet)
        fmt::print("sweep: rank {} finished point {} ({}); {} done of {}\n", from, msg["id"].get<int64_t>(),
                   to_string(out.status), store.counts().done, store.counts().total());
    }
    std::optional<StorePoint> p;
    if (!interrupt_requested()) p = store.claim_next(fmt::format("rank {}", from), msg.value("host", ""));
    if (!p) {
      send_json({{"stop", true}}, from, kAssign);
      --active;
      continue;
    }
    send_json({{"id", p->id}, {"dir", p->dir}, {"config", p->config}, {"error", p->error}, {"wall_s", p->wall_s}}, from,
              kAssign);
  }
  res.counts = store.counts();
  res.interrupted = interrupt_requested();
  return res;
}

void work(const std::string& out_dir, const SweepRunOptions& o) {
  const std::string host = host_name();
  const int threads = o.threads >= 0 ? o.threads : 1;
  send_json({{"host", host}}, 0, kReport);
  while (true) {
    nlohmann::json a = recv_json(0, kAssign, nullptr);
    if (a.value("stop", false)) return;
    StorePoint p;
    p.id = a["id"];
    p.dir = a["dir"];
    p.config = a["config"];
    p.error = a["error"];
    p.wall_s = a["wall_s"];
    PointOutcome out = execute_point(p, out_dir, {.threads = threads, .report = true, .quiet = true});
    send_json({{"host", host}, {"id", p.id}, {"outcome", outcome_to_json(out)}}, 0, kReport);
  }
}

}  // namespace

MpiSweepResult run_sweep_mpi(const SweepPlan& plan, const std::string& out_dir, const SweepRunOptions& o) {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  MpiSweepResult r;
  r.coordinator = rank == 0;
  try {
    IHLAB_CHECK(size >= 2, "sweep: under MPI a sweep needs at least 2 ranks (rank 0 coordinates), got {}", size);
    if (rank == 0)
      r.run = coordinate(plan, out_dir, o, size);
    else
      work(out_dir, o);
  } catch (const std::exception& e) {
    // One rank's failure would leave the others waiting forever.
    fmt::print(stderr, "ihlab: error on MPI rank {}: {}\n", rank, e.what());
    MPI_Abort(MPI_COMM_WORLD, 2);
  }
  MPI_Finalize();
  return r;
}

#endif

}  // namespace ihlab
