#!/usr/bin/env bash
# Fetch the native engine's jars (conf/maven/pom.xml) into $1, keeping only what pyspark does not
# already ship. Exit 0 either way: without the jars LakeScore runs on its embedded engine, so a
# machine that cannot reach Maven Central says so in one line and carries on.
#   usage: conf/maven/fetch-jars.sh JARS_DIR PYSPARK_JARS_DIR
set -uo pipefail
out=$(realpath -m "$1") spark_jars=$2
here=$(cd "$(dirname "$0")" && pwd)
tmp="$out.partial"

if ! command -v mvn >/dev/null 2>&1; then
  echo "native engine: no 'mvn' on this machine, so delta-spark's jars were not fetched; jobs use the embedded engine (apt-get install maven, then make setup)"
  exit 0
fi
rm -rf "$tmp" && mkdir -p "$tmp"
if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.log" 2>&1; then
  echo "native engine: could not fetch delta-spark's jars from Maven Central (see $tmp.log); jobs use the embedded engine"
  rm -rf "$tmp"
  exit 0
fi
# A jar whose artifact pyspark already ships (jackson, hadoop-client, parquet, scala, log4j, ...)
# would put a second, older copy of those classes on the classpath: keep Spark's.
artifact() { basename "$1" .jar | sed -E 's/-[0-9][^-]*([.-].*)?$//'; }
declare -A shipped=()
for jar in "$spark_jars"/*.jar; do shipped[$(artifact "$jar")]=1; done
# the same classes under other names: Spark's jcl-over-slf4j is commons-logging, and its
# RoaringBitmap 1.x folded in the shims jar that 0.9 needed
shipped[commons-logging]=1 shipped[shims]=1
for jar in "$tmp"/*.jar; do
  [ -n "${shipped[$(artifact "$jar")]:-}" ] && rm -f "$jar"
done
rm -f "$tmp.log"
rm -rf "$out" && mv "$tmp" "$out"
echo "native engine: $(ls "$out" | wc -l) jars in $out ($(ls "$out" | grep -E '^(delta-spark|hadoop-aws)' | tr '\n' ' '))"
