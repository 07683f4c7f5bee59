"""The start of a child program in which importing TensorFlow fails: what a machine without it sees."""

import textwrap


def preamble(blocked=("tensorflow", "tf_keras", "keras")) -> str:
    """Python source that makes `import X` raise ImportError for each top-level module in `blocked` (and
    their submodules); put it first in the child's program."""
    return textwrap.dedent('''
        import importlib.abc as _importlib_abc, sys as _sys

        class NoTensorFlow(_importlib_abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in %r:
                    raise ImportError("No module named %%r (TensorFlow is blocked in this process)" %% name)

        _sys.meta_path.insert(0, NoTensorFlow())
    ''' % (tuple(blocked),))
