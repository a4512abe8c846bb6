#pragma once
// Data-parallel gradients: the batch of a step split into `data.shards` equal shards, each shard's
// gradient computed by itself, the shards' gradients summed in shard order. Under MPI
// (`mpirun -np P ihlab train ...`, P dividing the shard count) rank r computes the shards
// r S/P .. (r+1) S/P - 1, the ranks exchange them (MPI_Allgather, so every rank holds all S in
// shard order) and every rank adds them in the same order: the result is bit-identical for any P,
// one process included, and a run started under mpirun resumes in one process (or the reverse)
// bit-identically.
//
// Why whole shard gradients and not an MPI_Allreduce: the order in which an allreduce adds the
// ranks' contributions is the library's choice; here it is fixed.
//
// With shards = 1 and one process the step is the plain loss + backward (no copy), so runs
// without the key are unchanged. Rank 0 writes the run directory; the other ranks compute the
// same metrics and write them to a scratch directory that is removed at the end (cli/main.cpp).
#include <cstdint>
#include <utility>

#include "models/model.h"
#include "tasks/batch.h"

namespace ihlab {

struct DataParallel {
  int rank = 0, size = 1;  // this process in the MPI world (0 of 1 without MPI)
};

// Throws ihlab::Error naming data.shards when it does not divide a batch of `batch_size` sequences
// or is not a multiple of the ranks.
void check_shards(int64_t batch_size, int64_t shards, const DataParallel& dp);

// This rank's rows of a batch of `batch_size`: [begin, end), the shards it computes.
std::pair<int64_t, int64_t> rank_rows(int64_t batch_size, int64_t shards, const DataParallel& dp);

// Sets the parameters' gradients to those of the mean loss over the whole batch (shards of equal
// size; each shard's mean loss weighted 1 / shards) and returns that loss. `mine` holds only this
// rank's rows (rank_rows: the whole batch in one process), so no rank samples the others' rows;
// the batch has mine.size * dp.size sequences.
template <typename T>
double sharded_gradient(Model<T>& model, const Batch& mine, int64_t shards, const DataParallel& dp);

// MPI_Init_thread / MPI_Finalize around a data-parallel run (`ihlab train` under mpirun). Throws
// ihlab::Error in a build without MPI.
class MpiWorld {
 public:
  MpiWorld();
  ~MpiWorld();
  MpiWorld(const MpiWorld&) = delete;
  MpiWorld& operator=(const MpiWorld&) = delete;
  DataParallel dp() const { return dp_; }
  // Every rank's value of `ok` and-ed together (a collective: every rank must call it).
  bool all(bool ok) const;

 private:
  DataParallel dp_;
};

}  // namespace ihlab
