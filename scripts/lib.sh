# Shared helpers for utipc scripts. Source it; do not run it.

# Installs the Debian packages named in "$@" that are missing (by dpkg status).
ensure_packages() {
    local missing=()
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$p")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing missing packages: ${missing[*]}"
        if [ "$(id -u)" -ne 0 ]; then
            echo "error: need root to install ${missing[*]} (run as root, or install them)" >&2
            return 1
        fi
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

# Fails unless cargo is on PATH (the machine's one Rust toolchain comes from rustup).
ensure_cargo() {
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            echo "error: cargo not found; install Rust 1.95 with rustup" >&2
            return 1
        fi
    fi
}
