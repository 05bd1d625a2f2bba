#!/bin/sh
# group.sh NAME ENABLED [--apt "pkgs"] [--npm "pkgs"] [--pip "pkgs"] [--outside "note"]
# Installs one INSTALL_* group when ENABLED is true; otherwise the layer is empty.
set -eu
. /opt/llm-docker/install/lib.sh
name=$1 enabled=$2; shift 2
apt="" npm="" pip="" outside=""
while [ "$#" -gt 0 ]; do
    case $1 in
        --apt) apt=$2 ;; --npm) npm=$2 ;; --pip) pip=$2 ;; --outside) outside=$2 ;;
        *) echo "group.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift 2
done
case $enabled in
    true) ;;
    *) echo "group $name: off"; exit 0 ;;
esac
echo "group $name: installing"
# shellcheck disable=SC2086
apt_install $apt
# shellcheck disable=SC2086
npm_install $npm
# shellcheck disable=SC2086
pip_install $pip
# shellcheck disable=SC2086
record "$name" $apt -- $npm -- $pip
if [ -n "$outside" ]; then
    echo "group $name: NOT installed (outside Debian/npm/PyPI): $outside"
    echo "outside: $outside" >> "$VERSIONS/$name.txt"
fi
