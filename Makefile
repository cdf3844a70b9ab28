# The two commands: `make demo` (the main job) and `make test` (the whole suite).
PY := /usr/bin/python3
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: setup demo test bench clean

setup:
	@sh scripts/setup.sh

demo: setup
	@sh examples/demo.sh

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) benchmarks/run

clean:
	rm -rf build bin/umvu umvu/submodules/vunet_stack umvu/core/libumvutracer.so umvu/core/_tracer*.so umvu/core/_tracer.c umvu/core/_tracer.o
