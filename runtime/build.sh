#!/bin/sh
# Build the sandbox image for linux/amd64 and linux/arm64 with docker buildx.
set -eu

usage() {
    cat <<'USAGE'
Usage: runtime/build.sh [--push] [--help]

Builds the FullstackAgent sandbox image from runtime/ for linux/amd64 and
linux/arm64 and tags it IMAGE:VERSION, VERSION being runtime/VERSION.

  --push    push the image to its registry (a multi-platform build cannot be
            loaded into the local image store; without --push the result stays
            in the buildx cache, which checks that the image builds)
  --help    show this text

Environment:
  IMAGE      image name without tag (default: fullstackagent/sandbox)
  PLATFORMS  platforms to build (default: linux/amd64,linux/arm64)
  DOCKER     docker command (default: docker)
USAGE
}

push=
for arg in "$@"; do
    case $arg in
        --push) push=--push ;;
        -h | --help) usage; exit 0 ;;
        *) printf 'build.sh: unknown argument %s\n\n' "$arg" >&2; usage >&2; exit 2 ;;
    esac
done

here=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
version=$(tr -d '[:space:]' <"$here/VERSION")
image=${IMAGE:-fullstackagent/sandbox}
platforms=${PLATFORMS:-linux/amd64,linux/arm64}

case $version in
    '' | *[!0123456789.]*) printf 'build.sh: %s/VERSION is not a version: %s\n' "$here" "$version" >&2; exit 2 ;;
esac

set -- buildx build \
    --platform "$platforms" \
    --build-arg "IMAGE_VERSION=$version" \
    --tag "$image:$version" \
    --file "$here/Dockerfile"
if [ -n "$push" ]; then
    set -- "$@" "$push"
fi
exec "${DOCKER:-docker}" "$@" "$here"
