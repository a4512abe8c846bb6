#include "train/run_spec.h"

namespace ihlab {

RunSpec run_spec_from_config(const nlohmann::json& c) {
  RunSpec r;
  r.config = c;
  r.name = c.value("name", "run");
  r.seed = c.value("seed", uint64_t(0));
  r.dtype = c.value("dtype", "float32");
  r.threads = c.value("threads", 0);
  if (c.contains("data")) {
    auto& d = c["data"];
    r.data.mode = d.value("mode", r.data.mode);
    r.data.train_size = d.value("train_size", r.data.train_size);
    r.data.val_size = d.value("val_size", r.data.val_size);
    r.data.batch_size = d.value("batch_size", r.data.batch_size);
  }
  if (c.contains("log")) {
    auto& l = c["log"];
    r.log.every = l.value("every", r.log.every);
    r.log.checkpoint_every = l.value("checkpoint_every", r.log.checkpoint_every);
    r.log.keep_checkpoints = l.value("keep_checkpoints", r.log.keep_checkpoints);
    r.log.geometric = l.value("geometric", r.log.geometric);
    r.log.attention_snapshots = l.value("attention_snapshots", r.log.attention_snapshots);
    r.log.attention_tokens = l.value("attention_tokens", r.log.attention_tokens);
    r.log.head_scores = l.value("head_scores", r.log.head_scores);
  }
  IHLAB_CHECK(c.contains("stages") && c["stages"].is_array() && !c["stages"].empty(),
              "config: key 'stages' must list at least one [[stages]] table");
  for (auto& s : c["stages"]) {
    StageSpec st;
    st.name = s.value("name", "stage" + std::to_string(r.stages.size()));
    st.train = s.value("train", std::vector<std::string>{"all"});
    st.method = s.value("method", st.method);
    st.optimizer.kind = s.value("optimizer", st.optimizer.kind);
    st.optimizer.momentum = s.value("momentum", 0.0);
    st.optimizer.weight_decay = s.value("weight_decay", 0.0);
    st.optimizer.beta1 = s.value("beta1", 0.9);
    st.optimizer.beta2 = s.value("beta2", 0.999);
    st.optimizer.eps = s.value("eps", 1e-8);
    st.optimizer.nesterov = s.value("nesterov", false);
    st.schedule.kind = s.value("schedule", st.schedule.kind);
    st.schedule.warmup_steps = s.value("warmup_steps", int64_t(0));
    st.schedule.min_lr_ratio = s.value("min_lr_ratio", 0.0);
    st.lr = s.value("lr", st.lr);
    st.steps = s.value("steps", int64_t(0));
    st.clip = s.value("clip", 0.0);
    st.time = s.value("time", 0.0);
    st.flow.rtol = s.value("rtol", st.flow.rtol);
    st.flow.atol = s.value("atol", st.flow.atol);
    st.objective = s.value("objective", st.objective);
    st.integrator = s.value("integrator", st.integrator);
    st.segment_first = s.value("segment_first", st.segment_first);
    st.segments_per_decade = s.value("segments_per_decade", st.segments_per_decade);
    st.stop_loss = s.value("stop_loss", st.stop_loss);
    if (st.method == "optimizer")
      IHLAB_CHECK(st.steps > 0, "config: key 'stages[{}].steps' = {} must be > 0 for an optimizer stage",
                  r.stages.size(), st.steps);
    if (st.method == "flow") {
      IHLAB_CHECK(st.time > 0, "config: key 'stages[{}].time' = {} must be > 0 for a flow stage",
                  r.stages.size(), st.time);
      IHLAB_CHECK(r.data.mode == "fixed" && r.data.batch_size == 0,
                  "config: stage '{}' uses gradient flow, which needs a fixed full-batch loss "
                  "(data.mode = \"fixed\", data.batch_size = 0); got data.mode = \"{}\", data.batch_size = {}",
                  st.name, r.data.mode, r.data.batch_size);
    }
    r.stages.push_back(std::move(st));
  }
  return r;
}

}  // namespace ihlab
