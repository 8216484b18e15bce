# ngx_stream_vmess_module
#
#   make              the module .so for Debian's nginx (nginx-dev headers)
#   make NGINX_SRC=D  the module .so (and objs/nginx) from an nginx source tree
#   make deps         install the Debian packages the project needs
#   make test         deps + build + the whole prove suite
#   make run          deps + build + start a VMess server on 127.0.0.1
#   make callgraph    which glue file calls which; fails on a call loop
#   make unit-asan    the core unit tests under ASan+UBSan
#   make bench-core   codec throughput next to bare OpenSSL EVP loops
#   make bench        server CPU, handshakes and memory against v2ray and
#                     plain nginx; writes bench/RESULTS.md
#   make fuzz         each libFuzzer harness for FUZZ_SECONDS (60) or
#                     FUZZ_RUNS executions; FUZZ_KEEP=1 keeps the corpus
#                     it grew and records the run in fuzz/RUNS.md
#   make deb          libnginx-mod-stream-vmess_<ver>_<arch>.deb in objs/, the
#                     way Debian packages its nginx modules; lintian on it
#   make asan         nginx + module built with ASan+UBSan from Debian's
#                     nginx source, then the whole prove suite against it

SHELL      := /bin/bash
TOP        := $(CURDIR)
OBJS       := $(TOP)/objs
VECTORS    ?= $(TOP)/../shared/vectors
NGINX_SRC  ?=

CC         ?= cc
CORE_CFLAGS = -std=c99 -O2 -g -Wall -Wextra -Werror -D_POSIX_C_SOURCE=200809L
SAN_FLAGS   = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
              -fno-sanitize-recover=all

CORE_SRCS  := $(wildcard src/vmess/*.c)
CORE_HDRS  := src/vmess/vmess.h src/vmess/vmess_body.h
GLUE_SRCS  := $(wildcard src/ngx_stream_vmess_*.c src/ngx_stream_vmess_*.h)
UNIT_SRCS  := $(wildcard t/unit/test_*.c)
UNIT_BINS  := $(patsubst t/unit/%.c,$(OBJS)/unit/%,$(UNIT_SRCS))
UNIT_ASAN  := $(patsubst t/unit/%.c,$(OBJS)/unit-asan/%,$(UNIT_SRCS))
CLIENT_SRCS := $(wildcard tools/vmess-client/*.c)
CLIENT_HDRS := $(wildcard tools/vmess-client/*.h)
TOOL_BINS  := $(OBJS)/vmess-client
CHECKED    := $(CORE_SRCS) $(CORE_HDRS) $(GLUE_SRCS) \
              $(CLIENT_SRCS) $(CLIENT_HDRS) \
              $(wildcard fuzz/*.c fuzz/*.h bench/*.c)

DEB_PKGS   := nginx nginx-dev libnginx-mod-stream libssl-dev libpcre2-dev \
              zlib1g-dev dpkg-dev gcc make perl libcryptx-perl \
              libdigest-crc-perl libnet-dns-perl libio-socket-ssl-perl \
              v2ray openssl curl clang libclang-rt-14-dev valgrind \
              iproute2 qrencode libyaml-libyaml-perl build-essential \
              debhelper lintian \
              python3-prometheus-client

ifeq ($(NGINX_SRC),)
MODULE_SO  := $(OBJS)/ngx_stream_vmess_module.so
NGINX_BIN  := /usr/sbin/nginx
GLUE_OBJS  := $(OBJS)/ngxdev/objs/addon/src
else
MODULE_SO  := $(NGINX_SRC)/objs/ngx_stream_vmess_module.so
NGINX_BIN  := $(NGINX_SRC)/objs/nginx
GLUE_OBJS  := $(NGINX_SRC)/objs/addon/src
endif

.PHONY: all deps module unit tools test run unit-asan asan bench-core \
        bench fuzz clean style callgraph valgrind deb

all: module unit tools

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
	    | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	    apt-get install -y -qq $$missing >/dev/null; \
	fi

module: $(MODULE_SO)

ifeq ($(NGINX_SRC),)
# Debian's nginx: configure a copy of the nginx-dev tree with Debian's own
# flags (same ABI and signature) and build only our .so.
$(MODULE_SO): config $(CORE_SRCS) $(CORE_HDRS) $(GLUE_SRCS)
	@mkdir -p $(OBJS)
	@if [ ! -f $(OBJS)/ngxdev/objs/Makefile ] \
	    || [ config -nt $(OBJS)/ngxdev/objs/Makefile ]; then \
	    rm -rf $(OBJS)/ngxdev && cp -a /usr/share/nginx/src $(OBJS)/ngxdev \
	    && cd $(OBJS)/ngxdev && . ./conf_flags && ./configure \
	    --with-cc-opt="$$(dpkg-buildflags --get CFLAGS) -fPIC \
	    $$(dpkg-buildflags --get CPPFLAGS)" \
	    --with-ld-opt="$$(dpkg-buildflags --get LDFLAGS) -fPIC" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --with-stream=dynamic --with-stream_ssl_module \
	    --with-stream_ssl_preread_module --with-stream_realip_module \
	    --add-dynamic-module=$(TOP) > configure.out \
	    || { cat configure.out; exit 1; }; \
	fi
	$(MAKE) -s -C $(OBJS)/ngxdev -f objs/Makefile \
	    objs/ngx_stream_vmess_module.so
	cp $(OBJS)/ngxdev/objs/ngx_stream_vmess_module.so $@.tmp && mv $@.tmp $@
else
$(MODULE_SO): config $(CORE_SRCS) $(CORE_HDRS) $(GLUE_SRCS)
	$(MAKE) -C $(NGINX_SRC) -f objs/Makefile
endif

$(OBJS)/vectors.txt: t/unit/flatten_vectors.pl $(wildcard $(VECTORS)/*.json)
	@mkdir -p $(OBJS)
	perl t/unit/flatten_vectors.pl $(VECTORS) > $@.tmp && mv $@.tmp $@

unit: $(UNIT_BINS) $(OBJS)/vectors.txt

$(OBJS)/unit/%: t/unit/%.c t/unit/unit.c t/unit/unit.h $(CORE_SRCS) \
    $(CORE_HDRS)
	@mkdir -p $(OBJS)/unit
	$(CC) $(CORE_CFLAGS) -Isrc/vmess -It/unit -o $@ $< t/unit/unit.c \
	    $(CORE_SRCS) -lcrypto

$(OBJS)/unit-asan/%: t/unit/%.c t/unit/unit.c t/unit/unit.h $(CORE_SRCS) \
    $(CORE_HDRS)
	@mkdir -p $(OBJS)/unit-asan
	$(CC) $(CORE_CFLAGS) $(SAN_FLAGS) -Isrc/vmess -It/unit -o $@ $< \
	    t/unit/unit.c $(CORE_SRCS) -lcrypto

unit-asan: $(UNIT_ASAN) $(OBJS)/vectors.txt
	VMESS_UNIT_DIR=$(OBJS)/unit-asan prove t/unit.t

tools: $(TOOL_BINS)

$(OBJS)/vmess-client: $(CLIENT_SRCS) $(CLIENT_HDRS) $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(OBJS)
	$(CC) $(CORE_CFLAGS) -Isrc/vmess -o $@ $(CLIENT_SRCS) $(CORE_SRCS) \
	    -lcrypto -lpthread

style:
	@! grep -nP '\t' $(CHECKED) || { echo "tabs found"; exit 1; }
	@! grep -nE '.{81,}' $(CHECKED) || { echo "lines over 80 columns"; exit 1; }
	@! grep -nE '(^|[^:])//' $(CHECKED) || { echo "// comments found"; exit 1; }
	@tools/check-layout README.md

# which glue file calls which (objs/callgraph.txt); fails on a call loop
callgraph: module
	tools/callgraph $(GLUE_OBJS)/ngx_stream_vmess_*.o > $(OBJS)/callgraph.txt
	@tail -n 1 $(OBJS)/callgraph.txt

test: deps all style callgraph
	NGINX_BIN=$(NGINX_BIN) VMESS_MODULE=$(MODULE_SO) prove -r t/

run: deps all
	NGINX_BIN=$(NGINX_BIN) VMESS_MODULE=$(MODULE_SO) tools/quickstart

bench-core: $(OBJS)/bench-core
	$(OBJS)/bench-core

$(OBJS)/bench-core: bench/core.c $(CORE_SRCS) $(CORE_HDRS)
	@mkdir -p $(OBJS)
	$(CC) $(CORE_CFLAGS) -Isrc/vmess -o $@ $< $(CORE_SRCS) -lcrypto

bench: deps all $(OBJS)/bench-core
	bench/run

# the package is built from a copy of the tree (dpkg-buildpackage writes
# into the parent directory), without objs/ and git's files
DEB_WORK   := $(OBJS)/deb

deb: deps
	rm -rf $(DEB_WORK) && mkdir -p $(DEB_WORK)/src
	tar -C $(TOP) --exclude=./objs --exclude=./.git -cf - . \
	    | tar -C $(DEB_WORK)/src -xf -
	cd $(DEB_WORK)/src && DEB_BUILD_OPTIONS=noddebs \
	    dpkg-buildpackage -b -us -uc > ../build.log 2>&1 \
	    || { tail -n 40 ../build.log; exit 1; }
	cp $(DEB_WORK)/*.deb $(OBJS)/
	lintian --info --fail-on error,warning $(DEB_WORK)/*.deb
	@ls $(OBJS)/*.deb

FUZZ_SECONDS ?= 60

fuzz: deps
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_KEEP=$(FUZZ_KEEP) fuzz/run $(FUZZ_SECONDS)

ASAN_WORK  := $(OBJS)/asan

asan: deps unit tools unit-asan
	@src=$$(tools/build-nginx-source $(ASAN_WORK) asan) \
	&& ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:quarantine_size_mb=16 \
	NGINX_BIN=$$src/objs/nginx \
	VMESS_MODULE=$$src/objs/ngx_stream_vmess_module.so prove -r t/

# nginx as one process under valgrind's memcheck: the tests whose sessions
# do not depend on several workers, reloads or tight timing
VALGRIND_TESTS := t/tcp.t t/v2ray.t t/udp.t t/mux.t t/tls.t t/ws.t \
                  t/ws-frames.t t/relay.t t/upstream.t t/concurrency.t

valgrind: deps all
	VMESS_VALGRIND=1 prove $(VALGRIND_TESTS)

clean:
	rm -rf $(OBJS)
