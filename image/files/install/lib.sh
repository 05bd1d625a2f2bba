# Shared helpers of the install scripts (sourced). Every install goes through these, so
# every install comes from Debian's packages, the npm registry or PyPI, and is recorded.
VERSIONS=/opt/llm-docker/versions

apt_install() {
    [ "$#" -gt 0 ] || return 0
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@"
    rm -rf /var/lib/apt/lists/*
}

npm_install() {
    [ "$#" -gt 0 ] || return 0
    npm install -g --no-fund --no-audit --loglevel=error "$@"
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
