"""VDM on CIFAR-10 with the paper's hyper-parameters (VDM Table 1: 2.65 bpd, no augmentation).

  tfds build cifar10 --file_format=array_record --data_dir=DIR   # once, with network and TensorFlow (README)
  python launch.py --config=configs/vdm_cifar10.py --workdir=/ckpt/vdm_cifar10 \\
      --config.data.data_dir=DIR

30.6M-parameter UNet: 32 ResNet blocks of 128 channels at full resolution, no
attention in the blocks, dropout 0.1, learnable linear schedule from -13.3 to 5,
continuous time, batch 128, AdamW (b2=0.99, wd=0.01), lr 2e-4 with 100 warm-up
steps, EMA 0.9999 (google-research/vdm configs/cifar10.py). Use
``--config.model.dtype=bfloat16`` for mixed precision.
"""

from configs import default


def get_config():
  config = default.get_default_config()
  config.data.name = "tfds"
  config.data.tfds_name = "cifar10"
  config.data.image_shape = (32, 32, 3)
  config.data.vocab_size = 256
  config.data.num_classes = 10
  config.model.schedule = "learned_linear"
  config.model.ch = 128
  config.model.n_blocks = 32
  config.model.dropout = 0.1
  config.eval.every_steps = 50_000
  config.eval.max_batches = 100    # 100 x 128 test images, as in the VDM code.
  config.training.save_every = 10_000
  config.training.log_every = 1000
  return config
