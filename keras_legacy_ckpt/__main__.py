from keras_legacy_ckpt.cli import run

if __name__ == "__main__":
    run()
