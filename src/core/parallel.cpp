#include "core/parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>

namespace ihlab {

void set_threads(int n) { omp_set_num_threads(n > 0 ? n : omp_get_num_procs()); }
int num_threads() { return omp_get_max_threads(); }

namespace {
std::atomic<int> g_offer{0};
std::mutex g_file_mutex;  // guards the two below
std::string g_offer_file;
std::chrono::steady_clock::time_point g_next_read;
}  // namespace

void offer_threads(int n) { g_offer.store(std::max(0, n)); }

void set_thread_offer_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_file_mutex);
  g_offer_file = path;
  g_next_read = {};
}

void adopt_offered_threads() {
  int offer = g_offer.load();
  {
    std::lock_guard<std::mutex> lock(g_file_mutex);
    const auto now = std::chrono::steady_clock::now();
    if (!g_offer_file.empty() && now >= g_next_read) {
      g_next_read = now + std::chrono::milliseconds(500);
      int n = 0;
      if (std::ifstream f(g_offer_file); f >> n) offer = std::max(offer, n);
    }
  }
  offer = std::min(offer, omp_get_num_procs());
  if (offer > num_threads()) set_threads(offer);
}

}  // namespace ihlab
