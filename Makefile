# mien — build, test, demo.
#   make            release build: build/libmien.a, build/libmien.so, build/mien, build/mien.1
#   make test       builds with AddressSanitizer + UBSan (build-asan/) and runs every test
#   make setup      Debian packages + models (scripts/setup.sh)
#   make demo       setup, build, detect and verify on the demo photos (writes out/)
#   make eval-lfw   LFW 10-fold verification accuracy (needs ../shared/data or MIEN_DATA)
#   make check-noxnnpack  the build without XNNPACK (XNNPACK=0) and its backend tests
#   make mask-model the face mask classifier of mien analyze (models/mien/mask.ckpt)
#   make install    PREFIX (/usr/local), DESTDIR: mien, libmien.a/.so, mien.h, mien.pc, the models
#                   under PREFIX/share/mien/models, the man page; `make uninstall` removes them

CC      ?= cc
# Libraries found through pkg-config, each as NAME:DEBIAN-PACKAGE (the package is named in the
# message when one is missing), and those without a pkg-config file as HEADER:DEBIAN-PACKAGE.
# The release build needs REL_PKGS and REL_HEADERS; only the tests need TEST_PKGS.
REL_PKGS    := libjpeg:libjpeg62-turbo-dev libpng:libpng-dev libwebp:libwebp-dev \
               libcjson:libcjson-dev sqlite3:libsqlite3-dev libmicrohttpd:libmicrohttpd-dev \
               libprotobuf-c:libprotobuf-c-dev libcrypto:libssl-dev libpq:libpq-dev \
               libavformat:libavformat-dev libavcodec:libavcodec-dev libswscale:libswscale-dev \
               libavutil:libavutil-dev libavdevice:libavdevice-dev libcurl:libcurl4-openssl-dev
REL_HEADERS := cblas.h:libopenblas-dev hnswlib/hnswlib.h:libhnswlib-dev
# XNNPACK=1 (the default): the fast backend on XNNPACK (src/nn/backend_xnnpack*.c). XNNPACK=0:
# a build without it, every node on the reference backend (slower; the tests pass the same).
XNNPACK ?= 1
ifeq ($(XNNPACK),1)
REL_HEADERS += xnnpack.h:libxnnpack-dev pthreadpool.h:libpthreadpool-dev
XNN_LIBS := -lXNNPACK -lpthreadpool
endif
TEST_PKGS   := check:check
pc_names = $(foreach p,$(1),$(firstword $(subst :, ,$(p))))
# Flags are read when make reads this file; `make demo` installs the packages first and then
# runs a new make for the build, so that on a new machine the flags are those of the installed
# packages. A missing package stops the build with its name (target `deps`), not with a compiler
# error about a header.
PKG_CFLAGS := $(shell pkg-config --cflags $(call pc_names,$(REL_PKGS)) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(call pc_names,$(REL_PKGS)) 2>/dev/null)
WARN    := -std=c11 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter
DEFS    := -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE
INC     := -Iinclude -Isrc
OPT     ?= -O2 -g
LIBS    := $(PKG_LIBS) $(XNN_LIBS) -lopenblas -lm -lpthread
CHECK_CFLAGS := $(shell pkg-config --cflags $(call pc_names,$(TEST_PKGS)) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs $(call pc_names,$(TEST_PKGS)) 2>/dev/null) -lz

LIB_SRC := $(sort $(wildcard src/core/*.c src/image/*.c src/nn/*.c src/face/*.c src/train/*.c \
                             src/gallery/*.c src/server/*.c src/video/*.c src/eval/*.c))
ifeq ($(XNNPACK),1)
DEFS += -DMIEN_HAVE_XNNPACK
else
LIB_SRC := $(filter-out src/nn/backend_xnnpack%.c,$(LIB_SRC))
endif
CLI_SRC := $(sort $(filter-out src/cli/main_mpi.c,$(wildcard src/cli/*.c)))
TEST_SRC := $(sort $(wildcard tests/*.c))

# mien serve: the files embedded in the binary (src/server/assets.c .incbin's them), and the
# CompreFace-compatible routes, compiled in when src/server/compreface.c exists.
SERVER_ASSETS := src/server/openapi.json src/server/web/index.html
ifneq ($(wildcard src/server/compreface.c),)
DEFS += -DMIEN_HAVE_COMPREFACE
endif

# ---- release build -------------------------------------------------------------------------
# Position-independent objects: the same ones go into libmien.a (linked into build/mien) and
# libmien.so (which exports only the mien_* API of mien.h: src/libmien.map).
B := build
CFLAGS_REL := $(WARN) $(DEFS) $(INC) $(PKG_CFLAGS) $(OPT) -fPIC -fno-semantic-interposition -MMD -MP
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)
VERSION := $(shell sed -n 's/\#define MIEN_VERSION_STRING "\(.*\)"/\1/p' include/mien.h)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))

all: $(B)/mien $(B)/libmien.so $(B)/mien.1

# Every package the build needs, checked before the first compile: the message names the
# Debian packages to install (`make setup` installs them all).
# Checks one list of NAME:PACKAGE pairs ($(1)) with the command $(2) run on NAME.
check_pkgs = missing=; for x in $(1); do $(2) "$${x%%:*}" >/dev/null 2>&1 || missing="$$missing $${x\#*:}"; done
has_header = f() { printf '\#include <%s>\n' "$$1" | $(CXX) -E -x c++ - >/dev/null 2>&1; }; f
deps:
	@command -v pkg-config >/dev/null || { echo "mien: missing Debian package: pkg-config (run 'make setup')" >&2; exit 2; }
	@$(call check_pkgs,$(REL_PKGS),pkg-config --exists); m1=$$missing; \
	 $(has_header) x; $(call check_pkgs,$(REL_HEADERS),f); missing="$$m1$$missing"; \
	 if [ -n "$$missing" ]; then \
	   echo "mien: missing Debian packages:$$missing" >&2; \
	   echo "mien: run 'make setup' (or apt-get install$$missing)" >&2; exit 2; fi
# Python modules the tests import (python/tests), as MODULE:DEBIAN-PACKAGE.
TEST_PYMODS := pytest:python3-pytest numpy:python3-numpy ensurepip:python3-venv
has_pymod = f() { /usr/bin/python3 -c "import $$1" 2>/dev/null; }; f
test-deps: deps
	@$(call check_pkgs,$(TEST_PKGS),pkg-config --exists); m1=$$missing; \
	 $(has_pymod) x; $(call check_pkgs,$(TEST_PYMODS),f); missing="$$m1$$missing"; \
	 if [ -n "$$missing" ]; then \
	   echo "mien: the tests need the Debian packages:$$missing (run 'make setup')" >&2; exit 2; fi

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -c $< -o $@

$(B)/libmien.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/mien: $(CLI_OBJ) $(B)/libmien.a
	$(CC) $(CLI_OBJ) $(B)/libmien.a $(LIBS) -o $@

# The shared library, for programs and for the Python package (python/): the same objects as
# libmien.a, every symbol but mien_* kept local.
$(B)/libmien.so: $(B)/libmien.a src/libmien.map
	$(CC) -shared -Wl,-soname,libmien.so.$(SOMAJOR) -Wl,--version-script=src/libmien.map \
	  -Wl,--no-undefined -Wl,--whole-archive $(B)/libmien.a -Wl,--no-whole-archive $(LIBS) -o $@

# The man page: a written head (tools/mien.1.head: search order, environment, files) and
# every command's --help, taken from the binary so that it cannot fall behind.
$(B)/mien.1: $(B)/mien tools/make_man.sh tools/mien.1.head
	bash tools/make_man.sh $(B)/mien tools/mien.1.head > $@.tmp && mv $@.tmp $@

# ---- data-parallel training: build/mien-train-mpi (`mien train` as one rank of an MPI run) --
# Only src/cli/main_mpi.c sees MPI, with mpicc's own flags; the library and build/mien
# never link it. Built with `all` where mpicc exists (Debian libopenmpi-dev).
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
all: $(B)/mien-train-mpi
endif
$(B)/src/cli/main_mpi.o: src/cli/main_mpi.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) $(MPI_CFLAGS) -c $< -o $@
$(B)/mien-train-mpi: $(B)/src/cli/main_mpi.o $(filter-out $(B)/src/cli/main.o,$(CLI_OBJ)) $(B)/libmien.a
	$(CC) $^ $(LIBS) $(MPI_LIBS) -o $@

# ---- benchmarks: build/bench_ops times every model on the reference and XNNPACK backends ----
bench-ops: $(B)/bench_ops
$(B)/bench_ops: $(B)/bench/bench_ops.o $(B)/libmien.a
	$(CC) $^ $(LIBS) -o $@
.PHONY: bench-ops

# ---- side by side with PyTorch, dlib and OpenCV: bench/peers.sh (on demand, not in make test) --
peers: $(B)/mien $(B)/peer_mien
	bash bench/peers.sh
$(B)/peer_mien: $(B)/bench/peer_mien.o $(B)/libmien.a
	$(CC) $^ $(LIBS) -o $@
.PHONY: peers

# ---- sanitizer build and tests ----------------------------------------------------------------
A := build-asan
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
CFLAGS_ASAN := $(WARN) $(DEFS) $(INC) $(PKG_CFLAGS) $(CHECK_CFLAGS) -O1 -g $(SAN) -MMD -MP
ALIB_OBJ := $(LIB_SRC:%.c=$(A)/%.o)
ACLI_OBJ := $(CLI_SRC:%.c=$(A)/%.o)
ATEST_OBJ := $(TEST_SRC:%.c=$(A)/%.o)

$(A)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ASAN) -c $< -o $@

$(A)/libmien.a: $(ALIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(A)/mien: $(ACLI_OBJ) $(A)/libmien.a
	$(CC) $(SAN) $(ACLI_OBJ) $(A)/libmien.a $(LIBS) -o $@

$(A)/run_tests: $(ATEST_OBJ) $(A)/libmien.a
	$(CC) $(SAN) $(ATEST_OBJ) $(A)/libmien.a $(CHECK_LIBS) $(LIBS) -o $@

$(B)/src/server/assets.o $(A)/src/server/assets.o: $(SERVER_ASSETS)
$(B)/src/server/routes.o $(A)/src/server/routes.o: $(wildcard src/server/compreface.c)

# ---- C++: the gallery's HNSW shim --------------------------------------------------------------
# hnswlib (Debian's libhnswlib-dev) is header-only C++, so src/gallery/hnsw_shim.cpp is mien's
# one C++ file: compiled with g++ into both libmien.a archives (the extra prerequisite lines
# add it to their $^), and every link adds the C++ runtime.
CXX      := g++
CXXWARN  := -std=c++17 -Wall -Wextra -Werror
LIB_CXX_SRC := src/gallery/hnsw_shim.cpp
$(B)/libmien.a: $(LIB_CXX_SRC:%.cpp=$(B)/%.o)
$(A)/libmien.a: $(LIB_CXX_SRC:%.cpp=$(A)/%.o)
$(B)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXWARN) $(DEFS) $(INC) $(OPT) -fPIC -fno-semantic-interposition -MMD -MP -c $< -o $@
$(A)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXWARN) $(DEFS) $(INC) -O1 -g $(SAN) -MMD -MP -c $< -o $@
LIBS += -lstdc++
-include $(LIB_CXX_SRC:%.cpp=$(B)/%.d) $(LIB_CXX_SRC:%.cpp=$(A)/%.d)
# build/bench_gallery: exact vs HNSW search on synthetic millions of faces (README).
bench-gallery: $(B)/bench_gallery
$(B)/bench_gallery: $(B)/bench/bench_gallery.o $(B)/libmien.a
	$(CC) $^ $(LIBS) -o $@
.PHONY: bench-gallery

# The tests run the sanitizer build of the library and of the CLI, and a release build for the
# slower end-to-end checks. MIEN_DATA points at the shared data (default ../shared/data).
# ---- fuzzing: a libFuzzer target per parser (tests/fuzz/fuzz_*.c) ------------------------------
# `make test` replays every committed input (tests/fuzz/corpus/T/) and every crash input of
# ../shared/data/fuzz/T/ through the sanitizer build (the `fuzz` test suite runs
# build-asan/fuzz_replay_T); `make fuzz` builds the targets with clang's libFuzzer into
# build-fuzz/ and runs a campaign (tools/fuzz.sh: FUZZ_SECONDS per target, FUZZ_TARGETS).
FUZZ_TARGETS ?= image onnx tfjs tflite faceapi ckpt gallery http video
FUZZ_COMMON := tests/fuzz/fuzz_util.c
FUZZ_REPLAY := $(FUZZ_TARGETS:%=$(A)/fuzz_replay_%)
$(A)/fuzz_replay_%: $(A)/tests/fuzz/fuzz_%.o $(A)/tests/fuzz/replay.o $(FUZZ_COMMON:%.c=$(A)/%.o) $(A)/libmien.a
	$(CC) $(SAN) $^ $(LIBS) -o $@
FZ := build-fuzz
FZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FZ_CFLAGS := -std=c11 -g -O1 $(DEFS) $(INC) $(PKG_CFLAGS) $(FZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP
FZ_LIB_OBJ := $(LIB_SRC:%.c=$(FZ)/%.o) $(LIB_CXX_SRC:%.cpp=$(FZ)/%.o)
$(FZ)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	clang $(FZ_CFLAGS) -c $< -o $@
$(FZ)/%.o: %.cpp | deps
	@mkdir -p $(dir $@)
	clang++ -std=c++17 -g -O1 $(DEFS) $(INC) $(FZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@
$(FZ)/libmien.a: $(FZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(FZ)/fuzz_%: $(FZ)/tests/fuzz/fuzz_%.o $(FUZZ_COMMON:%.c=$(FZ)/%.o) $(FZ)/libmien.a
	clang++ $(FZ_SAN) -fsanitize=fuzzer $^ $(LIBS) -o $@
# Keep the targets' objects (make deletes intermediate files of pattern chains).
.SECONDARY: $(FUZZ_TARGETS:%=$(A)/tests/fuzz/fuzz_%.o) $(FUZZ_TARGETS:%=$(FZ)/tests/fuzz/fuzz_%.o) \
            $(A)/tests/fuzz/replay.o $(FUZZ_COMMON:%.c=$(A)/%.o) $(FUZZ_COMMON:%.c=$(FZ)/%.o)
fuzz-build: $(FUZZ_TARGETS:%=$(FZ)/fuzz_%)
fuzz: fuzz-build
	FUZZ_TARGETS="$(FUZZ_TARGETS)" bash tools/fuzz.sh
.PHONY: fuzz fuzz-build

test: $(A)/run_tests $(A)/mien $(B)/mien $(B)/libmien.so $(if $(MPI_LIBS),$(B)/mien-train-mpi) $(FUZZ_REPLAY)
	@[ -d models ] || { echo "models/ missing: run 'make setup' first" >&2; exit 2; }
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:exitcode=86 \
	  MIEN_BIN=$(A)/mien MIEN_BIN_FAST=$(B)/mien $(A)/run_tests

# The build without XNNPACK (XNNPACK=0: every node on the reference backend) in its own
# folders: `make check-noxnnpack` builds its sanitizer test runner and runs the backend suite
# (every op and whole models, expecting the reference backend everywhere). CI runs it; the
# whole suite passes on that build too (README, Tests).
NOX_B := build-noxnnpack
NOX_A := build-asan-noxnnpack
check-noxnnpack:
	$(MAKE) XNNPACK=0 B=$(NOX_B) A=$(NOX_A) $(NOX_A)/run_tests
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:exitcode=86 \
	  $(NOX_A)/run_tests backend_ops
.PHONY: check-noxnnpack

setup:
	bash scripts/setup.sh

# The ONNX loader's protobuf code (src/nn/onnx.pb-c.[ch]) is generated from src/nn/onnx.proto
# and committed, so a build needs only libprotobuf-c; regenerate after editing the .proto.
proto:
	cd src/nn && protoc-c --proto_path=. --c_out=. onnx.proto

# Node packages of the TFJS / face-api oracles (only needed to regenerate tests/golden/).
tools:
	bash scripts/setup.sh --tools

goldens: tools all
	bash tools/make_goldens.sh
	bash tools/make_goldens_faceapi.sh

# A new make for the build: this one read the Makefile (and its pkg-config flags) before setup
# installed the packages.
demo: setup
	$(MAKE) all
	bash scripts/demo.sh

eval-lfw: all
	bash scripts/eval_lfw.sh

# The face mask classifier of mien analyze (README, "Face analysis"): a head trained with
# mien's training engine on half of the labelled mask photos of ../shared/data/analysis/mask
# (the other half measures it: mien eval analysis --set .../mask --part 1).
MIEN_DATA ?= ../shared/data
MASK_CKPT := models/mien/mask.ckpt
mask-model: $(B)/mien
	$(B)/mien train attribute --set $(MIEN_DATA)/analysis/mask --part 0 --out $(MASK_CKPT)

# Install the CLI, the library (static and shared), the header, a pkg-config file, the models
# (PREFIX/share/mien/models, where an installed mien finds them: mien.h, mien_models_open) and
# the man page. PREFIX=/usr/local; DESTDIR stages the tree elsewhere (packaging). The mask head
# is trained, not fetched: install trains it first when it is missing and the mask photos are
# there (make mask-model, about 15 s), and installs it beside the fetched models
# (PREFIX/share/mien/models/mien/mask.ckpt), so that an installed mien analyze answers the mask;
# without the photos it says so and installs the rest.
PREFIX ?= /usr/local
D := $(DESTDIR)$(PREFIX)
MODEL_FILES = $(shell grep -v '^\#' scripts/models.sha256 | awk '{print $$2}')
install: all
	@[ -d models ] || { echo "mien: models/ missing: run 'make setup' first" >&2; exit 2; }
	@cd models && for f in $(MODEL_FILES); do [ -f "$$f" ] || { \
	   echo "mien: models/$$f missing: run 'make setup'" >&2; exit 2; }; done
	install -d $(D)/bin $(D)/include $(D)/lib/pkgconfig $(D)/share/man/man1 $(D)/share/mien/models
	install -m 755 $(B)/mien $(D)/bin/
	$(if $(MPI_LIBS),install -m 755 $(B)/mien-train-mpi $(D)/bin/)
	install -m 644 include/mien.h $(D)/include/
	install -m 644 $(B)/libmien.a $(D)/lib/
	install -m 755 $(B)/libmien.so $(D)/lib/libmien.so.$(VERSION)
	ln -sf libmien.so.$(VERSION) $(D)/lib/libmien.so.$(SOMAJOR)
	ln -sf libmien.so.$(SOMAJOR) $(D)/lib/libmien.so
	install -m 644 $(B)/mien.1 $(D)/share/man/man1/
	cd models && for f in $(MODEL_FILES); do install -D -m 644 "$$f" "$(D)/share/mien/models/$$f" || exit 1; done
	grep -v '^\#' scripts/models.sha256 > $(D)/share/mien/models/SHA256SUMS
	@if [ ! -f $(MASK_CKPT) ] && [ -f $(MIEN_DATA)/analysis/mask/labels.tsv ]; then \
	   echo "mien: training the mask head ($(MASK_CKPT)): make mask-model"; \
	   $(MAKE) --no-print-directory mask-model || exit 1; fi
	@if [ -f $(MASK_CKPT) ]; then \
	   install -D -m 644 $(MASK_CKPT) $(D)/share/mien/models/mien/mask.ckpt || exit 1; \
	 else echo "mien: no mask head ($(MIEN_DATA)/analysis/mask missing): an installed mien analyze" \
	   "answers no mask until 'make mask-model' and 'make install' run again" >&2; fi
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' 'includedir=$${prefix}/include' '' \
	  'Name: mien' 'Description: face detection, alignment and recognition' 'Version: $(VERSION)' \
	  'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -lmien' \
	  'Libs.private: $(LIBS)' > $(D)/lib/pkgconfig/mien.pc

uninstall:
	rm -f $(D)/bin/mien $(D)/bin/mien-train-mpi $(D)/include/mien.h $(D)/lib/libmien.a \
	  $(D)/lib/libmien.so $(D)/lib/libmien.so.$(SOMAJOR) $(D)/lib/libmien.so.$(VERSION) \
	  $(D)/lib/pkgconfig/mien.pc $(D)/share/man/man1/mien.1
	rm -rf $(D)/share/mien

clean:
	rm -rf $(B) $(A) $(FZ) $(NOX_B) $(NOX_A)

# Nothing compiles before its packages are checked.
$(LIB_OBJ) $(CLI_OBJ) $(LIB_CXX_SRC:%.cpp=$(B)/%.o): | deps
$(ALIB_OBJ) $(ACLI_OBJ) $(ATEST_OBJ) $(LIB_CXX_SRC:%.cpp=$(A)/%.o): | test-deps

.PHONY: all deps test-deps test setup tools goldens demo eval-lfw mask-model install uninstall clean proto
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(ALIB_OBJ:.o=.d) $(ACLI_OBJ:.o=.d) $(ATEST_OBJ:.o=.d)
-include $(wildcard $(A)/tests/fuzz/*.d $(FZ)/src/*/*.d $(FZ)/tests/fuzz/*.d)

# ---- mixed precision: would bf16 activations speed training up? (bench/mixed_precision.sh) ----
bench-mixed: $(B)/bench_mixed
$(B)/bench_mixed: $(B)/bench/bench_mixed.o $(B)/libmien.a
	$(CC) $^ $(LIBS) -o $@
.PHONY: bench-mixed
