# mien — build, test, demo.
#   make            release build: build/libmien.a, build/mien
#   make test       builds with AddressSanitizer + UBSan (build-asan/) and runs every test
#   make setup      Debian packages + models (scripts/setup.sh)
#   make demo       setup, build, detect and verify on the demo photos (writes out/)
#   make eval-lfw   LFW 10-fold verification accuracy (needs ../shared/data or MIEN_DATA)
#   make mask-model the face mask classifier of mien analyze (models/mien/mask.ckpt)

CC      ?= cc
# Libraries found through pkg-config, each as NAME:DEBIAN-PACKAGE (the package is named in the
# message when one is missing), and those without a pkg-config file as HEADER:DEBIAN-PACKAGE.
# The release build needs REL_PKGS and REL_HEADERS; only the tests need TEST_PKGS.
REL_PKGS    := libjpeg:libjpeg62-turbo-dev libpng:libpng-dev libwebp:libwebp-dev \
               libcjson:libcjson-dev sqlite3:libsqlite3-dev libmicrohttpd:libmicrohttpd-dev \
               libprotobuf-c:libprotobuf-c-dev libcrypto:libssl-dev libpq:libpq-dev
REL_HEADERS := xnnpack.h:libxnnpack-dev pthreadpool.h:libpthreadpool-dev cblas.h:libopenblas-dev \
               hnswlib/hnswlib.h:libhnswlib-dev
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
LIBS    := $(PKG_LIBS) -lXNNPACK -lpthreadpool -lopenblas -lm -lpthread
CHECK_CFLAGS := $(shell pkg-config --cflags $(call pc_names,$(TEST_PKGS)) 2>/dev/null)
CHECK_LIBS := $(shell pkg-config --libs $(call pc_names,$(TEST_PKGS)) 2>/dev/null) -lz

LIB_SRC := $(sort $(wildcard src/core/*.c src/image/*.c src/nn/*.c src/face/*.c src/train/*.c \
                             src/gallery/*.c src/server/*.c))
CLI_SRC := $(sort $(wildcard src/cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))

# mien serve: the files embedded in the binary (src/server/assets.c .incbin's them), and the
# CompreFace-compatible routes, compiled in when src/server/compreface.c exists.
SERVER_ASSETS := src/server/openapi.json src/server/web/index.html
ifneq ($(wildcard src/server/compreface.c),)
DEFS += -DMIEN_HAVE_COMPREFACE
endif

# ---- release build -------------------------------------------------------------------------
B := build
CFLAGS_REL := $(WARN) $(DEFS) $(INC) $(PKG_CFLAGS) $(OPT) -MMD -MP
LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(B)/%.o)

all: $(B)/mien

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
test-deps: deps
	@$(call check_pkgs,$(TEST_PKGS),pkg-config --exists); if [ -n "$$missing" ]; then \
	   echo "mien: the tests need the Debian packages:$$missing (run 'make setup')" >&2; exit 2; fi

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) -c $< -o $@

$(B)/libmien.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/mien: $(CLI_OBJ) $(B)/libmien.a
	$(CC) $(CLI_OBJ) $(B)/libmien.a $(LIBS) -o $@

# ---- data-parallel training: build/mien-train-mpi (`mien train` as one rank of an MPI run) --
# Only src/train/mpi/main_mpi.c sees MPI, with mpicc's own flags; the library and build/mien
# never link it. Built with `all` where mpicc exists (Debian libopenmpi-dev).
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null)
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
ifneq ($(MPI_LIBS),)
all: $(B)/mien-train-mpi
endif
$(B)/src/train/mpi/main_mpi.o: src/train/mpi/main_mpi.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_REL) $(MPI_CFLAGS) -c $< -o $@
$(B)/mien-train-mpi: $(B)/src/train/mpi/main_mpi.o $(filter-out $(B)/src/cli/main.o,$(CLI_OBJ)) $(B)/libmien.a
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
	$(CXX) $(CXXWARN) $(DEFS) $(INC) $(OPT) -MMD -MP -c $< -o $@
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
test: $(A)/run_tests $(A)/mien $(B)/mien $(if $(MPI_LIBS),$(B)/mien-train-mpi)
	@[ -d models ] || { echo "models/ missing: run 'make setup' first" >&2; exit 2; }
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 UBSAN_OPTIONS=print_stacktrace=1:exitcode=86 \
	  MIEN_BIN=$(A)/mien MIEN_BIN_FAST=$(B)/mien $(A)/run_tests

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
mask-model: $(B)/mien
	$(B)/mien train attribute --set $(MIEN_DATA)/analysis/mask --part 0 --out models/mien/mask.ckpt

# Install the library, header, CLI and a pkg-config file (PREFIX=/usr/local, DESTDIR for
# staging).
PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/mien.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(B)/libmien.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(B)/mien $(DESTDIR)$(PREFIX)/bin/
	printf 'prefix=%s\nName: mien\nDescription: face detection, alignment and recognition\nVersion: %s\nCflags: -I$${prefix}/include\nLibs: -L$${prefix}/lib -lmien %s\n' \
	  '$(PREFIX)' "$$(sed -n 's/#define MIEN_VERSION_STRING "\(.*\)"/\1/p' include/mien.h)" '$(LIBS)' \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/mien.pc

clean:
	rm -rf $(B) $(A)

# Nothing compiles before its packages are checked.
$(LIB_OBJ) $(CLI_OBJ) $(LIB_CXX_SRC:%.cpp=$(B)/%.o): | deps
$(ALIB_OBJ) $(ACLI_OBJ) $(ATEST_OBJ) $(LIB_CXX_SRC:%.cpp=$(A)/%.o): | test-deps

.PHONY: all deps test-deps test setup tools goldens demo eval-lfw mask-model install clean proto
-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(ALIB_OBJ:.o=.d) $(ACLI_OBJ:.o=.d) $(ATEST_OBJ:.o=.d)
