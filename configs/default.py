"""Shared defaults for every VDM experiment; experiment configs set only deltas.

Every constant the trainer uses is a field here (seed, schedule constants,
optimiser, EMA rate, durations), so any of them can be overridden from the
command line, e.g. ``--config.optimizer.learning_rate=1e-4``.
"""

import ml_collections


def parse_arg(arg, **defaults):
  """A config arg 'k1=v1,k2,...' -> dict; a bare key means True (big_vision style).

  Every family's `get_config(arg)` parses its arg with this: the defaults give
  the known keys and their types ('quick', a smoke-run switch, is always known);
  an unknown key is an error naming the known ones.
  """
  out = dict(defaults)
  out.setdefault("quick", False)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in out:
      raise ValueError(f"unknown config arg {key!r}; known: {sorted(out)}.")
    out[key] = type(out[key])(value) if value else True
  return out


def base_config(experiment: str, *, seed: int = 0):
  """The root every config family builds on: what launch.py runs, and the seed.

  `experiment` is 'vdm' (`vdm_jax.train`) or the name of `experiments/<name>.py`,
  whose `run(config, workdir)` launch.py calls; every random draw of a run
  derives from `seed`.
  """
  config = ml_collections.ConfigDict()
  config.experiment = experiment
  config.seed = seed
  return config


def get_default_config():
  config = base_config("vdm")

  config.data = data = ml_collections.ConfigDict()
  data.name = "digits"            # 'digits' (bundled with scikit-learn) or 'tfds'.
  data.tfds_name = ""             # e.g. 'cifar10' when name == 'tfds'.
  data.data_dir = ""              # tfds data dir; '' = tfds default.
  data.train_split = "train"
  data.test_split = "test"
  data.split_seed = 0             # digits only: permutation defining train/test.
  data.image_shape = (8, 8, 1)
  data.vocab_size = 17
  data.num_classes = 10           # only used when model.class_conditional.

  config.model = model = ml_collections.ConfigDict()
  model.schedule = "learned_linear"  # fixed_linear | cosine | learned_linear | learned_net
  model.gamma_min = -13.3
  model.gamma_max = 5.0
  model.schedule_features = 1024     # learned_net only.
  model.num_steps = 0                # T; 0 = continuous time.
  model.antithetic = True
  model.ch = 128
  model.n_blocks = 32
  model.ch_mult = (1,)
  model.attn_in_blocks = False
  model.dropout = 0.1
  model.fourier_exponents = (7, 8)   # sin/cos(2^n pi z); period 2/2^n vs bin width 2/V.
  model.class_conditional = False
  model.dtype = "float32"            # 'bfloat16' for mixed precision (params stay float32).

  config.training = training = ml_collections.ConfigDict()
  training.batch_size = 128          # global, over all devices and hosts.
  training.num_train_steps = 10_000_000
  training.log_every = 100
  training.save_every = 5000
  training.keep_checkpoints = 3
  training.variance_minimization = True  # only acts on schedules with shape params.
  training.ema_rate = 0.9999
  training.num_devices = 0           # local devices the train step runs on (0: all of them).
  training.steps_per_call = 1        # k steps per device call (lax.scan); log/save every multiples of k.
  training.ema_warmup = True         # decay min(ema_rate, (1+n)/(10+n)) at update n.

  config.optimizer = opt = ml_collections.ConfigDict()
  opt.learning_rate = 2e-4
  opt.warmup_steps = 100
  opt.b1 = 0.9
  opt.b2 = 0.99
  opt.eps = 1e-8
  opt.weight_decay = 0.01
  opt.decay_schedule_params = False  # The official VDM code's AdamW decays them; we don't.
  opt.grad_clip = 1.0                # global-norm clipping; 0 disables.

  config.eval = ev = ml_collections.ConfigDict()
  ev.batch_size = 128
  ev.num_t_draws = 4                 # test bpd averaged over this many (t, eps) draws.
  ev.every_steps = 0                 # 0: evaluate only at the end.
  ev.at_end = True
  ev.max_batches = 0                 # 0: the whole test split.

  config.sampling = sampling = ml_collections.ConfigDict()
  sampling.num_samples = 64
  sampling.num_steps = 1000          # T of the ancestral sampler (any T).
  sampling.sample_softmax = False
  sampling.at_end = True

  config.compression = comp = ml_collections.ConfigDict()
  comp.num_steps = 100               # T of the bits-back chain.
  comp.latent_precision = 2          # log2 bins per narrowest std; 1-2 is best (benchmarks/compression.py).
  return config
