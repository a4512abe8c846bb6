#include "train/run_schema.h"

#include "models/registry.h"
#include "tasks/registry.h"

namespace ihlab {

namespace {
Schema stage_schema() {
  Schema s;
  s.string("name", "train", "stage name (used in checkpoint names and reports)")
      .string_list("train", nlohmann::json::array({"all"}), "parameter groups trained in this stage; the rest are frozen")
      .string("method", "optimizer", "discrete optimizer steps, or gradient flow integrated by Dormand-Prince 5(4)",
              {"optimizer", "flow"})
      .string("optimizer", "adam", "update rule (optimizer stages)", {"sgd", "adam", "adamw"})
      .real("lr", 1e-3, "learning rate (flow: time scale of dθ/dt = -lr ∇L)", 0, 1e12)
      .integer("steps", 0, "optimizer steps in this stage (optimizer stages)", 0, 1e12)
      .real("time", 0.0, "integration time (flow stages)", 0, 1e12)
      .real("momentum", 0.0, "SGD momentum", 0, 1)
      .boolean("nesterov", false, "Nesterov momentum (SGD)")
      .real("weight_decay", 0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)", 0, 1e3)
      .real("beta1", 0.9, "Adam beta1", 0, 1)
      .real("beta2", 0.999, "Adam beta2", 0, 1)
      .real("eps", 1e-8, "Adam epsilon", 0, 1)
      .real("clip", 0.0, "clip the global gradient norm to this value; 0 = off", 0, 1e12)
      .string("schedule", "constant", "learning-rate schedule within the stage", {"constant", "warmup", "cosine"})
      .integer("warmup_steps", 0, "linear warm-up steps", 0, 1e12)
      .real("min_lr_ratio", 0.0, "cosine: final lr as a fraction of lr", 0, 1)
      .real("rtol", 1e-6, "flow: relative tolerance of the integrator", 1e-15, 1)
      .real("atol", 1e-9, "flow: absolute tolerance of the integrator", 0, 1)
      .string("integrator", "dopri5",
              "flow: dopri5 (explicit Dormand-Prince 5(4), one trainer step per accepted step) or cvode-bdf (SUNDIALS "
              "CVODE, implicit BDF for stiff flows, one trainer step per segment; a fresh solver per segment, so "
              "a resume is bit-identical)", {"dopri5", "cvode-bdf"})
      .real("segment_first", 0.01, "cvode-bdf: the first segment is [0, segment_first]", 1e-12, 1e12)
      .real("segments_per_decade", 10.0, "cvode-bdf: segment k ends at segment_first * 10^(k / this) (capped at time)",
            0.01, 1e6)
      .real("stop_loss", 0.0,
            "end the stage early once the training loss after a step (flow: at the accepted step's end; optimizer: "
            "the step's batch loss) is at or below this; 0 = run the stage to its steps or time",
            0, 1e300)
      .string("objective", "loss",
              "what the model minimizes in this stage: loss (the task's), or an objective the model offers "
              "(attention-circuit: copy-previous, layer 1 fitting the previous token)");
  return s;
}
}  // namespace

Schema run_schema() {
  std::map<std::string, Schema> tasks, models;
  for (auto& t : task_registry()) tasks[t.name] = t.schema;
  for (auto& m : model_registry()) models[m.name] = m.schema;
  Schema root;
  root.string("name", "run", "run name")
      .integer("seed", 0, "seed of every random stream (init, data, eval)", 0, 9.007199254740992e15)
      .string("dtype", "float32", "number type of parameters and activations", {"float32", "float64"})
      .integer("threads", 0, "worker threads; 0 = all cores (results do not depend on it)", 0, 4096)
      .variants("task", "name", tasks, "", "the data")
      .variants("model", "name", models, "", "the model")
      .table("data", Schema()
                         .string("mode", "fresh", "fresh: a new batch every step; fixed: one training set",
                                 {"fresh", "fixed"})
                         .integer("train_size", 1024, "fixed mode: training sequences", 1, 1e9)
                         .integer("val_size", 256, "validation sequences", 1, 1e9)
                         .integer("batch_size", 32, "sequences per step; fixed mode: 0 = full batch", 0, 1e9))
      .table("log", Schema()
                        .integer("every", 10, "steps between metric rows", 1, 1e12)
                        .integer("checkpoint_every", 0, "steps between checkpoints; 0 = only at stage ends", 0, 1e12)
                        .integer("keep_checkpoints", 3, "periodic checkpoints kept on disk", 1, 1e6)
                        .boolean("geometric", false, "also log ~20 rows per decade of steps (log-x plots)")
                        .integer("attention_snapshots", 16,
                                 "attention patterns of one validation sequence saved to attention.jsonl at about "
                                 "this many logged steps, spread geometrically, plus stage ends (0 = none)", 0, 1e6)
                        .integer("attention_tokens", 64, "the last N query and key positions kept per pattern", 1,
                                 4096)
                        .integer("head_scores", 16,
                                 "validation sequences on which every attention head's previous-token, induction "
                                 "(TransformerLens) and prefix-matching scores are logged (prev.*, ind.*, pm.*; 0 = off)",
                                 0, 1 << 20))
      .table_array("stages", stage_schema(), 1, "training stages, run in order");
  return root;
}

}  // namespace ihlab
