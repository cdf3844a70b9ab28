# The two commands: `make demo` (the main job) and `make test` (the whole suite).
PY := /usr/bin/python3
export PATH := $(CURDIR)/bin:$(PATH)

.PHONY: setup demo test bench clean install

setup:
	@sh scripts/setup.sh

demo: setup
	@sh examples/demo.sh

test: setup
	$(PY) -m pytest -q tests

# umvu, its commands and man pages under PREFIX: a virtual environment of its own in
# PREFIX/lib/umvu (with the system's packages: Debian's python3-pyfuse3...), its
# commands linked into PREFIX/bin, the pages into PREFIX/share/man/man1
PREFIX ?= /usr/local
COMMANDS := umvu vu_insmod vu_rmmod vu_lsmod vumount vuumount vuname vudebug vuctl vusu vustack
install: setup
	$(PY) -m venv --system-site-packages $(PREFIX)/lib/umvu
	$(PREFIX)/lib/umvu/bin/pip install -q .
	mkdir -p $(PREFIX)/bin $(PREFIX)/share/man/man1
	for c in $(COMMANDS); do ln -sf ../lib/umvu/bin/$$c $(PREFIX)/bin/$$c; done
	cp $(PREFIX)/lib/umvu/share/man/man1/*.1 $(PREFIX)/share/man/man1/

bench: setup
	$(PY) benchmarks/run

clean:
	rm -rf build bin/umvu umvu/submodules/vunet_stack umvu/core/libumvutracer.so umvu/core/_tracer*.so umvu/core/_tracer.c umvu/core/_tracer.o
