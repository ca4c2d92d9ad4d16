#!/usr/bin/env bash
# Builds the docs page; re-runs only when a doc or SITE_TITLE changes.
#FABRIK input "docs/**/*.md"
#FABRIK env "SITE_TITLE"
#FABRIK output "site/"
set -euo pipefail
mkdir -p site
{ echo "# ${SITE_TITLE:-Docs}"; cat docs/*.md; } > site/index.md
echo "built site/index.md"
