#!/bin/sh
# backup.sh: back up the log of an event-broker data directory, or restore a
# backup into a new one.
#
#   backup.sh                           make a verified archive, prune old ones
#   backup.sh restore ARCHIVE DATA_DIR  verify ARCHIVE and unpack it into
#                                       DATA_DIR, which must be empty or missing
#
# Settings, from the environment:
#   BROKER_URL      http://127.0.0.1:3000   the running broker
#   ADMIN_TOKEN     (unset)                 sent as "Authorization: Bearer <token>" when set:
#                                           the checkpoint is an admin route, which only
#                                           it opens when the broker has it set
#   BROKER_TOKEN    (unset)                 sent instead when ADMIN_TOKEN is unset
#   DATA_DIR        ./data                  the broker's data directory as this script
#                                           sees it: the checkpoint appears in it
#   BACKUP_DIR      ./backups               where archives are kept
#   RETENTION_DAYS  7                       archives older than this many days are deleted
#   EVENT_BROKER    event-broker            the binary that verifies archives (on PATH)
#
# Crontab line: every day at 03:17; cron mails what goes to stderr, so only
# failures arrive:
#   17 3 * * * DATA_DIR=/var/lib/event-broker BACKUP_DIR=/var/backups/event-broker /usr/local/bin/backup.sh >/dev/null
#
# A backup, in order:
#   1. When the broker runs (DATA_DIR/LOCK is held), it asks for a checkpoint
#      (POST /api/admin/checkpoint): hard links of the sealed segments and a
#      copy of the active segment's durable prefix, under DATA_DIR/checkpoints/.
#      When the broker is stopped (the lock is free), it takes the lock itself,
#      so that a broker starting meanwhile cannot change the log (it fails to
#      start and its supervisor starts it again), and archives DATA_DIR/wal.
#   2. It archives them as BACKUP_DIR/.event-broker-<UTC time>.tar.gz.partial
#      and fsyncs that file.
#   3. It unpacks the archive into a temporary directory in BACKUP_DIR and
#      runs `event-broker verify` on it: every frame, and the checkpoint's
#      sizes and checksums. Only a verified archive gets its final name.
#   4. It renames it to BACKUP_DIR/event-broker-<UTC time>.tar.gz (for example
#      event-broker-20261201T084400Z.tar.gz) and fsyncs BACKUP_DIR.
#   5. It deletes the checkpoint.
#   6. It deletes archives older than RETENTION_DAYS, and what runs that were
#      killed left behind more than a day ago (temporary files, checkpoints).
#   It prints the archive's path on stdout.
#
# The archive is a data directory:
#   wal/<first sequence number, 20 digits>.seg   the segments
#   wal/manifest.json                            from a checkpoint: each segment's
#                                                size and crc32; the broker ignores it
# Unpacked into an empty directory, it is all `event-broker` needs to start
# there. `backup.sh restore` verifies it first and leaves the manifest out.
#
# Any failure exits 1 (2 for a wrong command line) with one line on stderr,
# starting "backup.sh: ". Temporary files, and a checkpoint this run made,
# are deleted; nothing is left under an archive's final name.
#
# Needs sh, curl, tar, gzip, coreutils, findutils and flock (util-linux).

set -u
umask 077

me=backup.sh
work=''
partial=''
checkpoint=''

# Run by the EXIT trap, which shellcheck does not follow.
# shellcheck disable=SC2317
cleanup() {
  if [ -n "$partial" ]; then rm -f -- "$partial"; fi
  if [ -n "$work" ]; then rm -rf -- "$work"; fi
  if [ -n "$checkpoint" ]; then
    rm -rf -- "$checkpoint" "$(dirname -- "$checkpoint")/.$(basename -- "$checkpoint").partial"
  fi
}

die() {
  printf '%s: %s\n' "$me" "$*" >&2
  exit 1
}

# The last line of what a command wrote to stderr: kept in file $1 ...
last_line() {
  last_of "$(cat -- "$1" 2>/dev/null)"
}

# ... or in text $1.
last_of() {
  said=$(printf '%s\n' "$1" | sed '/^[[:space:]]*$/d' | tail -n 1)
  printf '%s\n' "${said:-it said nothing}"
}

trap cleanup EXIT
trap 'die "interrupted"' HUP INT TERM

BROKER_URL=${BROKER_URL:-http://127.0.0.1:3000}
ADMIN_TOKEN=${ADMIN_TOKEN:-}
BROKER_TOKEN=${BROKER_TOKEN:-}
DATA_DIR=${DATA_DIR:-./data}
BACKUP_DIR=${BACKUP_DIR:-./backups}
RETENTION_DAYS=${RETENTION_DAYS:-7}
EVENT_BROKER=${EVENT_BROKER:-event-broker}

check_event_broker() {
  command -v "$EVENT_BROKER" >/dev/null 2>&1 \
    || die "EVENT_BROKER=$EVENT_BROKER is not an executable (on PATH or as a path)"
}

# Verifies the archive unpacked in $1: against the checkpoint's manifest when
# it came from one, frame by frame as a data directory otherwise.
verify_unpacked() {
  [ -d "$1/wal" ] || die "the archive holds no wal/ folder: not an event-broker backup"
  target_of_verify=$1
  if [ -f "$1/wal/manifest.json" ]; then target_of_verify=$1/wal; fi
  LOG_LEVEL=off "$EVENT_BROKER" verify "$target_of_verify" >"$work/verify.out" 2>"$work/err" \
    || die "the archive does not verify ($EVENT_BROKER verify exited $?): $(last_line "$work/err")"
}

# Asks the broker for checkpoint $1; sets $checkpoint first, so that it is
# deleted on any failure, even one after the broker made it.
ask_for_checkpoint() {
  checkpoint=$DATA_DIR/checkpoints/$1
  token=${ADMIN_TOKEN:-$BROKER_TOKEN}
  if [ -n "$token" ]; then
    # In a file, so that the token does not show in the process list.
    printf 'Authorization: Bearer %s\n' "$token" >"$work/headers"
  else
    : >"$work/headers"
  fi
  url=${BROKER_URL%/}/api/admin/checkpoint
  status=$(curl -sS --connect-timeout 10 --max-time 600 -o "$work/answer" -w '%{http_code}' \
    -H @"$work/headers" -H 'Content-Type: application/json' \
    --data "{\"name\":\"$1\"}" "$url" 2>"$work/err") \
    || die "cannot ask the broker for a checkpoint at $url: $(last_line "$work/err")"
  case $status in
    2??) ;;
    *)
      code=$(sed -n 's/.*"code" *: *"\([^"]*\)".*/\1/p' "$work/answer" | head -n 1)
      message=$(sed -n 's/.*"message" *: *"\([^"]*\)".*/\1/p' "$work/answer" | head -n 1)
      die "the broker at $url refused the checkpoint: HTTP $status ${code:-}${message:+: $message}"
      ;;
  esac
  [ -f "$checkpoint/manifest.json" ] \
    || die "the broker made checkpoint $1, but $checkpoint is not there: is DATA_DIR=$DATA_DIR the broker's data directory?"
}

backup() {
  case $RETENTION_DAYS in
    '' | *[!0-9]*) die "RETENTION_DAYS=$RETENTION_DAYS is not a whole number of days" ;;
  esac
  [ "$RETENTION_DAYS" -ge 1 ] || die "RETENTION_DAYS=$RETENTION_DAYS: keep archives for at least 1 day"
  check_event_broker
  [ -d "$DATA_DIR/wal" ] \
    || die "DATA_DIR=$DATA_DIR holds no wal/ folder: is it the broker's data directory?"
  out=$(mkdir -p -- "$BACKUP_DIR" 2>&1) \
    || die "cannot create BACKUP_DIR=$BACKUP_DIR: $(last_of "$out")"
  out=$(mktemp -d "$BACKUP_DIR/.event-broker-backup.XXXXXX" 2>&1) \
    || die "cannot write in BACKUP_DIR=$BACKUP_DIR: $(last_of "$out")"
  work=$out

  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  final=$BACKUP_DIR/event-broker-$stamp.tar.gz
  [ ! -e "$final" ] || die "$final exists already: one backup a second at most"
  partial=$BACKUP_DIR/.event-broker-$stamp.tar.gz.partial

  lock=$DATA_DIR/LOCK
  if [ ! -e "$lock" ]; then
    touch -- "$lock" 2>"$work/err" || die "cannot create $lock: $(last_line "$work/err")"
  fi
  [ -r "$lock" ] || die "cannot read $lock, the lock a running broker holds"
  exec 9<"$lock"
  flock -n -E 75 9 2>"$work/err"
  held=$?
  case $held in
    0) archive_stopped ;;
    75)
      exec 9<&-
      archive_checkpoint
      ;;
    *) die "cannot test the lock $lock: $(last_line "$work/err")" ;;
  esac

  sync -- "$partial" 2>"$work/err" || die "cannot fsync $partial: $(last_line "$work/err")"
  mkdir -- "$work/unpacked"
  tar -xzf "$partial" -C "$work/unpacked" 2>"$work/err" \
    || die "cannot unpack the new archive: $(last_line "$work/err")"
  verify_unpacked "$work/unpacked"
  mv -- "$partial" "$final" 2>"$work/err" || die "cannot rename $partial: $(last_line "$work/err")"
  partial=''
  sync -- "$BACKUP_DIR" 2>"$work/err" || die "cannot fsync $BACKUP_DIR: $(last_line "$work/err")"
  if [ -n "$checkpoint" ]; then
    rm -rf -- "$checkpoint" 2>"$work/err" \
      || die "cannot delete the checkpoint $checkpoint: $(last_line "$work/err")"
    checkpoint=''
  fi
  prune
  printf '%s\n' "$final"
}

# The broker runs: archive a checkpoint, its folder named wal/ in the archive.
archive_checkpoint() {
  name=backup-sh-$stamp-$$
  ask_for_checkpoint "$name"
  tar -czf "$partial" -C "$DATA_DIR/checkpoints" --transform "s|^$name|wal|" "$name" \
    2>"$work/err" || die "cannot archive $checkpoint: $(last_line "$work/err")"
}

# The broker is stopped and this script holds its lock: archive the segments.
archive_stopped() {
  (cd -- "$DATA_DIR" && find wal -maxdepth 1 -type f -name '*.seg') >"$work/files" 2>"$work/err" \
    || die "cannot list $DATA_DIR/wal: $(last_line "$work/err")"
  [ -s "$work/files" ] || die "DATA_DIR=$DATA_DIR/wal holds no segment"
  tar -czf "$partial" -C "$DATA_DIR" -T "$work/files" 2>"$work/err" \
    || die "cannot archive $DATA_DIR/wal: $(last_line "$work/err")"
}

prune() {
  find "$BACKUP_DIR" -maxdepth 1 -type f -name 'event-broker-*.tar.gz' \
    -mmin "+$((RETENTION_DAYS * 1440))" -exec rm -f -- {} + 2>"$work/err" \
    || die "cannot delete old archives in $BACKUP_DIR: $(last_line "$work/err")"
  find "$BACKUP_DIR" -maxdepth 1 -name '.event-broker-*' -mmin +1440 \
    -exec rm -rf -- {} + 2>"$work/err" \
    || die "cannot delete what killed runs left in $BACKUP_DIR: $(last_line "$work/err")"
  if [ -d "$DATA_DIR/checkpoints" ]; then
    find "$DATA_DIR/checkpoints" -maxdepth 1 -name 'backup-sh-*' -mmin +1440 \
      -exec rm -rf -- {} + 2>"$work/err" \
      || die "cannot delete checkpoints killed runs left: $(last_line "$work/err")"
  fi
}

restore() {
  archive=$1
  target=$2
  check_event_broker
  if [ ! -f "$archive" ] || [ ! -r "$archive" ]; then
    die "ARCHIVE $archive is not a readable file"
  fi
  if [ -e "$target" ] || [ -L "$target" ]; then
    [ -d "$target" ] || die "DATA_DIR $target exists and is not a directory"
    # A fresh filesystem's lost+found does not make a volume's root non-empty.
    out=$(find "$target" -mindepth 1 -maxdepth 1 ! -name lost+found 2>&1) \
      || die "cannot list DATA_DIR $target: $(last_of "$out")"
    [ -z "$out" ] || die "DATA_DIR $target is not empty: restore only into an empty or missing directory"
    # Unpacked inside it, so that moving the log into place is a rename.
    staging_in=$target
  else
    staging_in=$(dirname -- "$target")
    out=$(mkdir -p -- "$staging_in" 2>&1) || die "cannot create $staging_in: $(last_of "$out")"
  fi
  out=$(mktemp -d "$staging_in/.event-broker-restore.XXXXXX" 2>&1) \
    || die "cannot write in $staging_in: $(last_of "$out")"
  work=$out
  mkdir -- "$work/data"
  tar -xzf "$archive" -C "$work/data" 2>"$work/err" \
    || die "cannot unpack $archive: $(last_line "$work/err")"
  verify_unpacked "$work/data"
  # It describes the backup, not the log the broker goes on writing.
  rm -f -- "$work/data/wal/manifest.json"
  find "$work/data" -exec sync -- {} + 2>"$work/err" \
    || die "cannot fsync the restored files: $(last_line "$work/err")"
  if [ -d "$target" ]; then
    mv -- "$work/data/wal" "$target/wal" 2>"$work/err" \
      || die "cannot move the log into $target: $(last_line "$work/err")"
  else
    mv -- "$work/data" "$target" 2>"$work/err" \
      || die "cannot move the log to $target: $(last_line "$work/err")"
  fi
  rm -rf -- "$work"
  work=''
  sync -- "$target" "$staging_in" 2>/dev/null || die "cannot fsync $target"
  printf '%s\n' "$target"
}

case $# in
  0) backup ;;
  *)
    if [ "$1" = restore ] && [ $# -eq 3 ]; then
      restore "$2" "$3"
    else
      printf '%s: usage: %s | %s restore ARCHIVE DATA_DIR\n' "$me" "$me" "$me" >&2
      exit 2
    fi
    ;;
esac
exit 0
