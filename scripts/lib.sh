# Helpers the scripts share. Source it with ROOT set and die() defined.

# Prints the vswitchd to run: $VSWITCHD if set; otherwise target/release/vswitchd, built by cargo
# (which does nothing when the build is current). Without cargo in PATH (root's, under sudo, often
# lacks it) an existing build is used as it is. Build output goes to stderr.
vswitchd_binary() {
  if [ -n "${VSWITCHD:-}" ]; then
    [ -x "$VSWITCHD" ] || die "VSWITCHD=$VSWITCHD is not an executable"
    echo "$VSWITCHD"
    return
  fi
  local bin="$ROOT/target/release/vswitchd"
  if command -v cargo >/dev/null; then
    (cd "$ROOT" && cargo build --release --quiet --bins) >&2 || die "build failed (cargo build --release --bins)"
  elif [ -x "$bin" ]; then
    echo "cargo is not in PATH; running the existing $bin" >&2
  else
    die "cargo is not in PATH: build as yourself (cargo build --release --bins), or set VSWITCHD"
  fi
  echo "$bin"
}
