"""Thread pools created in the process that uses them: gunicorn and RQ fork after import, and a pool
inherited through fork has no threads."""
import os
import threading
from concurrent.futures import ThreadPoolExecutor


class ProcessLocalPool:
    def __init__(self, size: int, name: str) -> None:
        self.size, self.name = size, name
        self._executor: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._executor = ThreadPoolExecutor(self.size, thread_name_prefix=self.name)
                    self._pid = os.getpid()
        executor = self._executor
        assert executor is not None, "made above for this process"
        return executor

    def detach(self) -> ThreadPoolExecutor | None:
        """This process's executor, if it made one, which the next get() replaces (to shut it down)."""
        with self._lock:
            executor = self._executor if self._pid == os.getpid() else None
            self._executor, self._pid = None, None
        return executor
