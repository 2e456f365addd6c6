# PrismQ Task Queue: build, install and test the Go engine and the Python package.
#
#   make test    everything CI runs: installs what it needs, then lints and tests Go and Python
#   make build   the shared library into python/prismq_queue/native/ (for working in the source tree)
#   make install pip-installs the package from source (builds the library) and the test tools
#   make dll     cross-builds the Windows DLL and checks its exports against capi/prismq_queue.h
#   make lint | demo | bench | bench-peers | clean

PYTHON ?= python3
GO     ?= go
GOFMT  := $(shell $(GO) env GOROOT)/bin/gofmt

# c-shared builds and the race detector both need cgo.
export CGO_ENABLED := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_ROOT_USER_ACTION := ignore
PIP := $(PYTHON) -m pip install --quiet

GOOS := $(shell $(GO) env GOOS)
ifeq ($(GOOS),windows)
LIB := prismq_queue.dll
else ifeq ($(GOOS),darwin)
LIB := libprismq_queue.dylib
else
LIB := libprismq_queue.so
endif

WIN_CC  := x86_64-w64-mingw32-gcc
WIN_DLL := build/windows/prismq_queue.dll
HEADER  := capi/prismq_queue.h
PY_SRC  := python/prismq_queue scripts

# Steps share the installed package and tools, so they must not run in parallel.
.NOTPARALLEL:
.PHONY: test build install go-deps lint gofmt vet ruff mypy vermin gotest pytest dll demo bench bench-peers clean

test: go-deps install lint gotest pytest dll

build:
	$(GO) build -buildmode=c-shared -trimpath -o python/prismq_queue/native/$(LIB) ./capi

go-deps:
	$(GO) mod download

# pip always rebuilds and reinstalls a local directory, so the tests see the current source.
install:
	$(PIP) ".[test]"

lint: gofmt vet ruff mypy vermin

gofmt:
	@out="$$($(GOFMT) -l .)"; if [ -n "$$out" ]; then echo "gofmt: not formatted:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

ruff:
	$(PYTHON) -m ruff check .

mypy:
	$(PYTHON) -m mypy --strict

# Fails when the package needs a Python newer than 3.10 (the app's version).
# vermin has no __main__ module; its console script may not be on PATH (pyenv shims).
vermin:
	$(PYTHON) -c 'import sys, vermin; sys.exit(vermin.main())' \
		-t=3.10- --no-tips --violations --eval-annotations $(PY_SRC)

gotest:
	$(GO) test -race -shuffle=on -count=1 ./tests_go/...

# Run from tests_py/ so that the installed package is imported, never python/ from the
# source tree; the first line shows which one. No test collected (exit 5) fails too.
pytest:
	cd tests_py && $(PYTHON) -c "import prismq_queue; print('testing', prismq_queue.__file__)"
	cd tests_py && $(PYTHON) -m pytest

dll:
	@command -v $(WIN_CC) >/dev/null 2>&1 || { \
		echo "installing mingw-w64 for the Windows cross-build"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-mingw-w64-x86-64; }
	GOOS=windows GOARCH=amd64 CC=$(WIN_CC) $(GO) build -buildmode=c-shared -trimpath -o $(WIN_DLL) ./capi
	$(PYTHON) scripts/check_exports.py $(HEADER) $(WIN_DLL)

# The console script is run by its installed path: a pyenv shim may not exist for it yet.
demo: install
	"$$($(PYTHON) -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/prismq-queue" demo

# Engine benchmarks (medians of 3 into BENCHMARKS.md), the Python benchmark against a textbook
# sqlite3 loop (bench/results_python.md), the BackgroundTaskManager cost, then the peers.
BENCH_GO := $(GO) test -run='^$$' -count=3 ./tests_go/
bench: go-deps install
	$(BENCH_GO) -bench='Enqueue|ClaimBatchAck|^BenchmarkAckAndClaim$$|ClaimLatency8|DriverFloor' -benchtime=2s | tee bench/results_engine.txt
	$(BENCH_GO) -bench='ClaimComplete' -benchtime=5000x | tee -a bench/results_engine.txt
	$(BENCH_GO) -bench='Processes' -benchtime=1x | tee -a bench/results_engine.txt
	$(PYTHON) bench/engine_report.py bench/results_engine.txt BENCHMARKS.md
	$(PYTHON) bench/bench_python.py
	$(PYTHON) bench/bench_manager.py
	$(PYTHON) bench/run_all.py

# Our engine and package side by side with goqite, River, litequeue, persist-queue, huey and a
# textbook sqlite3 loop. Installs the Python peers with pip; bench/go fetches the Go peers.
bench-peers: go-deps install
	$(PYTHON) bench/run_all.py

clean:
	rm -rf build dist python/prismq_queue/native python/*.egg-info *.egg-info .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
