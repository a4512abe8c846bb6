#include "train/run_spec.h"

namespace ihlab {

RunSpec run_spec_from_config(const nlohmann::json& c) {
  RunSpec r = read_fields<RunSpec>(c);
  r.config = c;
  for (std::size_t i = 0; i < r.stages.size(); ++i) {
    const StageSpec& st = r.stages[i];
    if (st.method == StageMethod::Optimizer)
      IHLAB_CHECK(st.steps > 0, "config: key 'stages[{}].steps' = {} must be > 0 for an optimizer stage", i, st.steps);
    if (st.method == StageMethod::Flow) {
      IHLAB_CHECK(st.time > 0, "config: key 'stages[{}].time' = {} must be > 0 for a flow stage", i, st.time);
      IHLAB_CHECK(r.data.mode == DataMode::Fixed && r.data.batch_size == 0,
                  "config: stage '{}' uses gradient flow, which needs a fixed full-batch loss "
                  "(data.mode = \"fixed\", data.batch_size = 0); got data.mode = \"{}\", data.batch_size = {}",
                  st.name, enum_name(r.data.mode), r.data.batch_size);
    }
  }
  return r;
}

}  // namespace ihlab
