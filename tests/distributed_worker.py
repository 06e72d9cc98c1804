"""One worker of the two-worker cluster in tests/test_distributed.py.

Started with ``TF_CONFIG`` naming this worker, it trains small convolutional
autoencoders with ``keras_ae.distributed.fit_distributed`` on 64 smooth 16x16
images: per decoder, one epoch that writes a checkpoint, then a second call
that resumes from it and trains epoch 2. It writes ``worker<index>.npz``
(weights: initial, after epoch 1, final) and ``worker<index>.json`` (the
histories, and the MSE on all 64 images at those three points) to the output
folder.

Exit status 0 on success, 3 if this worker's server could not bind its port
(the test then skips), anything else on failure.
"""

import argparse
import json
import os
import sys

BIND_FAILED = 3
GLOBAL_BATCH = 8  # 4 per worker: 8 steps per epoch
IMAGES = 64


def smooth_images(count=IMAGES, size=16, seed=0):
    """Products of low-frequency sines in [0, 1]: learnable, deterministic."""
    import numpy as np
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 1, size, dtype="float32")
    freq = rng.uniform(0.5, 2.0, (count, 2, 1)).astype("float32")
    phase = rng.uniform(0, 2 * np.pi, (count, 2, 1)).astype("float32")
    rows = np.sin(2 * np.pi * freq[:, 0] * grid + phase[:, 0])
    cols = np.sin(2 * np.pi * freq[:, 1] * grid + phase[:, 1])
    images = 0.5 + 0.5 * rows[:, :, None] * cols[:, None, :]
    return images[..., None].astype("float32")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--decoders", default="upsample,unpool")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import keras
    import numpy as np
    import tensorflow as tf
    from keras_ae import build_conv_autoencoder, distributed

    try:
        strategy = distributed.multi_worker_strategy()
    except tf.errors.UnknownError as error:
        if "Could not start gRPC server" in str(error):
            print(f"cannot bind: {error}", file=sys.stderr)
            return BIND_FAILED
        raise
    index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    images = smooth_images()

    def make_dataset(context):
        batch = context.get_per_replica_batch_size(GLOBAL_BATCH)
        data = tf.data.Dataset.from_tensor_slices((images, images))
        return data.shard(context.num_input_pipelines,
                          context.input_pipeline_id).batch(batch)

    def mse(model):  # on all images, locally: no collectives
        outputs = np.asarray(model(images, training=False))
        return float(np.mean((outputs - images) ** 2))

    weights, history, evaluated = {}, {}, {}
    for decoder in args.decoders.split(","):
        keras.utils.set_random_seed(0)
        initial = []

        def build_model():
            model = build_conv_autoencoder((16, 16, 1), filters=(4, 2),
                                           decoder=decoder)
            initial.append((model.get_weights(), mse(model)))
            return model

        checkpoint_dir = os.path.join(args.out, f"checkpoints_{decoder}")
        runs = [distributed.fit_distributed(
            build_model, make_dataset, strategy=strategy, epochs=epochs,
            learning_rate=1e-2, checkpoint_dir=checkpoint_dir)
            for epochs in (1, 2)]
        for name, values in (("initial", initial[0][0]),
                             ("epoch1", runs[0]["model"].get_weights()),
                             ("final", runs[1]["model"].get_weights())):
            weights.update({f"{decoder}/{name}/{i}": w
                            for i, w in enumerate(values)})
        history[decoder] = [{key: run[key] for key in
                             ("epochs", "loss", "steps", "images")}
                            for run in runs]
        evaluated[decoder] = [initial[0][1], mse(runs[0]["model"]),
                              mse(runs[1]["model"])]

    np.savez(os.path.join(args.out, f"worker{index}.npz"), **weights)
    with open(os.path.join(args.out, f"worker{index}.json"), "w") as file:
        json.dump({"index": index, "replicas": strategy.num_replicas_in_sync,
                   "history": history, "mse": evaluated}, file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
