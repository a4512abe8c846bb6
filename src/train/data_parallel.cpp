#include "train/data_parallel.h"

#include <vector>

#include "core/autograd.h"
#include "core/error.h"

#ifdef IHLAB_HAVE_MPI
#include <mpi.h>
#endif

namespace ihlab {

void check_shards(int64_t batch_size, int64_t shards, const DataParallel& dp) {
  IHLAB_CHECK(shards >= 1 && batch_size % shards == 0,
              "config: key 'data.shards' = {} must divide the batch of {} sequences (data.batch_size)", shards,
              batch_size);
  IHLAB_CHECK(shards % dp.size == 0,
              "config: key 'data.shards' = {} must be a multiple of the {} MPI ranks (mpirun -np)", shards, dp.size);
}

std::pair<int64_t, int64_t> rank_rows(int64_t batch_size, int64_t shards, const DataParallel& dp) {
  check_shards(batch_size, shards, dp);
  const int64_t per_rank = batch_size / dp.size;
  return {dp.rank * per_rank, (dp.rank + 1) * per_rank};
}

template <typename T>
double sharded_gradient(Model<T>& model, const Batch& mine, int64_t shards, const DataParallel& dp) {
  auto& params = model.params();
  if (shards == 1 && dp.size == 1) {  // the plain step
    params.zero_grad();
    Var<T> loss = model.loss(mine);
    backward(loss);
    return double(loss.item());
  }
  check_shards(mine.size * dp.size, shards, dp);
  auto trainable = params.trainable();
  int64_t np = 0;
  for (auto* p : trainable) np += p->var.value().numel();
  const int64_t per_rank = shards / dp.size, rows = mine.size / per_rank, stride = np + 1;
  // Each shard's gradient and (last) its mean loss, in double: [shards, np + 1], shard order.
  std::vector<double> all(size_t(shards * stride));
  double* own = all.data() + dp.rank * per_rank * stride;
  for (int64_t j = 0; j < per_rank; ++j) {
    params.zero_grad();
    Var<T> loss = model.loss(mine.slice(j * rows, (j + 1) * rows));
    backward(loss);
    double* out = own + j * stride;
    for (auto* p : trainable)
      for (T g : p->var.grad().span()) *out++ = double(g);
    *out = double(loss.item());
  }
#ifdef IHLAB_HAVE_MPI
  if (dp.size > 1)
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all.data(), int(per_rank * stride), MPI_DOUBLE, MPI_COMM_WORLD);
#else
  IHLAB_CHECK(dp.size == 1, "data-parallel training over {} ranks needs a build with MPI", dp.size);
#endif
  // The mean over shards, added in shard order whatever the rank count.
  std::vector<double> sum(all.begin(), all.begin() + stride);
  for (int64_t s = 1; s < shards; ++s)
    for (int64_t i = 0; i < stride; ++i) sum[i] += all[s * stride + i];
  const double inv = 1.0 / double(shards);
  const double* g = sum.data();
  for (auto* p : trainable)
    for (T& x : p->var.grad().span()) x = T(*g++ * inv);
  return sum[np] * inv;
}

template double sharded_gradient<float>(Model<float>&, const Batch&, int64_t, const DataParallel&);
template double sharded_gradient<double>(Model<double>&, const Batch&, int64_t, const DataParallel&);

#ifdef IHLAB_HAVE_MPI
MpiWorld::MpiWorld() {
  int provided = 0;
  MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
  MPI_Comm_rank(MPI_COMM_WORLD, &dp_.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &dp_.size);
}
MpiWorld::~MpiWorld() { MPI_Finalize(); }
bool MpiWorld::all(bool ok) const {
  int in = ok ? 1 : 0, out = 0;
  MPI_Allreduce(&in, &out, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  return out == 1;
}
#else
MpiWorld::MpiWorld() { fail("this build of ihlab has no MPI (install libopenmpi-dev and rebuild)"); }
MpiWorld::~MpiWorld() = default;
bool MpiWorld::all(bool ok) const { return ok; }
#endif

}  // namespace ihlab
