# Shared helpers of the install scripts (sourced). Every install goes through these, so
# every install comes from Debian's packages, the npm registry or PyPI, and is recorded.
VERSIONS=/opt/llm-docker/versions

# One apt transaction per call; the package lists and caches never stay in a layer
# (apt-setup.sh already keeps apt from writing most of them). When every package is
# installed already (tmux for the second tmux group), not even the lists are fetched.
apt_install() {
    [ "$#" -gt 0 ] || return 0
    missing=""
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' \
            || missing="$missing $package"
    done
    [ -n "$missing" ] || { echo "apt: already installed: $*"; return 0; }
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
    apt-get clean
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt/* /var/log/dpkg.log
}

npm_install() {
    [ "$#" -gt 0 ] || return 0
    npm install -g --no-fund --no-audit --no-update-notifier --loglevel=error "$@"
    npm cache clean --force >/dev/null 2>&1 || true
    rm -rf /root/.npm/_logs /root/.npm/_update-notifier-last-checked
}

# npm from the npm registry itself, for a Node.js that comes without one (Debian's nodejs).
# Debian's own npm package drags in ~340 node-* packages (~130 MB) and is npm 9, which
# ignores a package's `libc` field: it installs Claude Code's glibc AND musl binaries
# (~370 MB twice). npm 10 is the newest line that still runs on Debian 12's Node 18.
NPM_BOOTSTRAP_VERSION=10.9.4

npm_bootstrap() {
    registry=${NPM_CONFIG_REGISTRY:-https://registry.npmjs.org}
    registry=${registry%/}
    work=$(mktemp -d)
    curl -fsSL --retry 3 "$registry/npm/-/npm-$NPM_BOOTSTRAP_VERSION.tgz" | tar -xz -C "$work"
    node "$work/package/bin/npm-cli.js" install -g --no-fund --no-audit --no-update-notifier \
        --loglevel=error "npm@$NPM_BOOTSTRAP_VERSION"
    rm -rf "$work"
    npm cache clean --force >/dev/null 2>&1 || true
}

pip_install() {
    [ "$#" -gt 0 ] || return 0
    pip3 install --no-cache-dir --break-system-packages --root-user-action=ignore "$@"
}

# record NAME [apt packages...] -- [npm packages...] -- [pip packages...]
record() {
    name=$1; shift
    mkdir -p "$VERSIONS"
    out="$VERSIONS/$name.txt"
    : > "$out"
    section=apt
    for item in "$@"; do
        if [ "$item" = "--" ]; then
            case $section in apt) section=npm ;; npm) section=pip ;; esac
            continue
        fi
        case $section in
            apt) dpkg-query -W -f='apt ${Package}=${Version}\n' "$item" >> "$out" 2>/dev/null \
                     || echo "apt $item=(not installed)" >> "$out" ;;
            npm) package=${item%@*}; [ -n "$package" ] || package=$item
                 version=$(npm ls -g --depth=0 --json 2>/dev/null \
                     | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const d=JSON.parse(s).dependencies||{};const p=d[process.argv[1]];console.log(p?p.version:"(not installed)")})' "$package")
                 echo "npm $package=$version" >> "$out" ;;
            pip) version=$(pip3 show "$item" 2>/dev/null | sed -n 's/^Version: //p')
                 echo "pip $item=${version:-(not installed)}" >> "$out" ;;
        esac
    done
    cat "$out"
}
