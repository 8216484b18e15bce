# bench/RESULTS.md from the figures of a run.  It only formats: every
# figure, and what the machine and the run were, come in $R (bench/run
# fills it): settings (the run's options and sizes), machine, load_start,
# load_end, seconds, finished, crypto, crypto_v2 (the bare cipher with
# v2ray's chunk size), real, bulk, buffers, stats, hs, mem, refusals,
# profile, notes.  A section the run did not measure is left out.
# merge_report puts the sections of a run into an earlier report instead.
package VmessBench::Report;

use strict;
use warnings;

use Exporter 'import';
use POSIX qw/strftime/;

our @EXPORT_OK = qw/report merge_report/;

my $GiB = 1 << 30;

sub report {
    my ($R) = @_;
    return join '', head($R), method($R), measured_sections($R),
        targets_section($R),
        $R->{profile} ? profile_section($R) : (),
        @{$R->{notes}} ? notes_section($R) : ();
}

# the numbered sections of what the run measured
sub measured_sections {
    my ($R) = @_;
    return ($R->{real} ? real_section($R) : (),
            $R->{bulk} ? (bulk_section($R), bulk_v2_section($R)) : (),
            $R->{buffers} ? buffers_section($R) : (),
            $R->{stats} ? stats_section($R) : (),
            $R->{hs} ? handshakes_section($R) : (),
            $R->{mem} ? memory_section($R) : (),
            $R->{refusals} ? refusals_section($R) : ());
}

# $old (an earlier RESULTS.md) with the numbered sections and the profile
# of this run in place of its own (or before its targets when it has none),
# each saying when and how it was measured, and its first paragraph naming
# them; the other sections, their figures and the targets stay as they were
sub merge_report {
    my ($old, $R) = @_;
    my @new = (measured_sections($R),
               $R->{profile} ? profile_section($R) : ());
    my @ids;
    for my $text (@new) {
        $text =~ s/^(## [^\n]*\n\n)/$1 . provenance($R)/e;
        my ($id) = $text =~ /^## (\S+) /;
        push @ids, $id eq 'Profile' ? 'the profile' : $id =~ s/\.$//r;
        next if $old =~ s/^## \Q$id\E .*?(?=^## |\z)/$text/ms;
        $old =~ s/^(?=## Targets)/$text/m or $old .= $text;
    }
    my $one = 'Every figure below was measured in this one run';
    my $sep = qr/ but those of sections? (.*?), each measured separately/;
    return $old unless $old =~ /\Q$one\E(?:$sep)?\./;
    my %all = map { $_ => 1 } @ids, split /, /, $1 // '';
    my @all = sort keys %all;
    my $but = sprintf ' but those of section%s %s, each measured separately',
        @all > 1 ? 's' : '', join(', ', @all);
    $old =~ s/\Q$one\E(?:$sep)?\./$one$but./;
    return $old;
}

# the first lines of a section measured in a run of its own
sub provenance {
    my ($R) = @_;
    my $m = $R->{machine};
    my $r = sprintf "Measured separately by `bench/run --only %s%s` on %s in "
        . "%.0f s (load average at start %s, at end %s), the module "
        . "built from %s%s.\n\n", $R->{settings}{only},
        $R->{settings}{quick} ? ' --quick' : '',
        strftime('%Y-%m-%d %H:%M UTC', gmtime $R->{finished}), $R->{seconds},
        $R->{load_start}, $R->{load_end}, $m->{head},
        $m->{dirty} ? " with $m->{dirty} changed files under src/" : '';
    $r .= "Notes of that run:\n\n" . join('', map { "- $_\n" } @{$R->{notes}})
        . "\n" if @{$R->{notes}};
    return $r;
}

# ---------------------------------------------------------------- figures

sub f2 { return defined $_[0] ? sprintf('%.2f', $_[0]) : 'n/a' }

sub verdict {
    my ($ratio, $limit, $le) = @_;
    return 'n/a' unless defined $ratio;
    my $pass = $le ? $ratio <= $limit : $ratio >= $limit;
    return sprintf '%.2f %s', $ratio, $pass ? 'PASS' : 'MISS';
}

sub ratio {
    my ($a, $b) = @_;
    return undef unless defined $a && defined $b && $b > 0;
    return $a / $b;
}

sub plus {
    my ($a, $b) = @_;
    return defined $a && defined $b ? $a + $b : undef;
}

sub human {
    my ($b) = @_;
    return $b % $GiB == 0 ? ($b / $GiB) . ' GiB' : ($b >> 20) . ' MiB';
}

sub bulk_cpu {
    my ($R, $key) = @_;
    return $R->{bulk}{$key} ? $R->{bulk}{$key}{cpu} : undef;
}

# the bare cipher on the bytes of $dirn: open for upload, seal for download
sub crypto_cost {
    my ($R, $sec, $dirn) = @_;
    return $R->{crypto}{$sec}{$dirn eq 'upload' ? 'open' : 'seal'};
}

# plain nginx + the bare cipher
sub floor {
    my ($R, $sec, $dirn, $buf, $conns) = @_;
    return plus(bulk_cpu($R, "plain$buf|-|$dirn|$conns"),
                crypto_cost($R, $sec, $dirn));
}

# what the cipher costs on bytes in flight: bench/relay with it less
# bench/relay with none
sub in_flight {
    my ($R, $sec, $dirn, $buf, $conns) = @_;
    my $with = bulk_cpu($R, "relay$buf|$sec|$dirn|$conns");
    my $none = bulk_cpu($R, "relay$buf|none|$dirn|$conns");
    return undef unless defined $with && defined $none;
    return $sec eq 'none' ? 0 : $with - $none;
}

# plain nginx + the cipher in flight
sub in_situ_floor {
    my ($R, $sec, $dirn, $buf, $conns) = @_;
    return plus(bulk_cpu($R, "plain$buf|-|$dirn|$conns"),
                in_flight($R, $sec, $dirn, $buf, $conns));
}

sub hs_ratio {
    my ($R, $n) = @_;
    my ($m, $v) = @{$R->{hs}{$n}}{qw/module v2ray/};
    return ratio($m && $m->{per_cpu}, $v && $v->{per_cpu});
}

sub mem_verdict {
    my ($m, $who) = @_;
    my $v = $m->{v2ray} && $m->{v2ray}{per_conn};
    return verdict(ratio($m->{$who} && $m->{$who}{per_conn}, $v), 0.25, 1);
}

# ------------------------------------------------------ machine, method

sub head {
    my ($R) = @_;
    my $m = $R->{machine};
    my $r = "# Benchmark results\n\n";
    $r .= sprintf "Written by `bench/run%s` on %s in %.0f s.  Every figure "
        . "below was measured in this one run.\n\n",
        $R->{settings}{quick} ? ' --quick' : '',
        strftime('%Y-%m-%d %H:%M UTC', gmtime $R->{finished}), $R->{seconds};

    $r .= "## Machine and versions\n\n";
    $r .= sprintf "- machine: %s CPUs (nproc), %s, Linux %s, %.0f GiB RAM\n",
        $m->{nproc}, $m->{cpu_model}, $m->{kernel},
        ($m->{mem_kib} // 0) / 1048576;
    $r .= "- nginx: $m->{nginx} (Debian's /usr/sbin/nginx)\n";
    $r .= "- v2ray: $m->{v2ray} (Debian's /usr/bin/v2ray)\n";
    $r .= "- OpenSSL: $m->{openssl}\n";
    $r .= "- module: objs/ngx_stream_vmess_module.so built from $m->{head}"
        . ($m->{dirty} ? " with $m->{dirty} changed files under src/" : '')
        . "\n";
    $r .= "- load average at start: $R->{load_start}; at end: "
        . "$R->{load_end}\n";
    my ($l1) = $R->{load_start} =~ /^([\d.]+)/;
    my ($le1) = $R->{load_end} =~ /^([\d.]+)/;
    my $ncpu = $m->{nproc} + 0;
    if (($l1 // 0) > $ncpu / 2 || ($le1 // 0) > $ncpu / 2) {
        $r .= "- **the machine was busy with other work during this run** "
            . "(load average above): CPU seconds are charged per process, "
            . "so the ratios hold up better than throughput, but cache and "
            . "scheduler effects of the other load remain in every figure\n";
    }
    return "$r\n";
}

sub method {
    my ($R) = @_;
    my ($s, $m) = @$R{qw/settings machine/};
    my $r = "## Method\n\n";
    $r .= "- Server cost = utime + stime (from `/proc/PID/stat`, "
        . "$m->{tick} ticks/s) of every nginx worker, or of the v2ray "
        . "process, read just before and after each client run; the load "
        . "generator and the targets are not counted.\n";
    $r .= sprintf "- Bulk: %s per transfer (1 connection, or 8 "
        . "connections of an eighth each), %s (servers restarted each "
        . "round).  nginx: `worker_processes 1` for 1 "
        . "connection, 2 for 8 connections (workers summed), "
        . "`proxy_buffer_size` 16k and 128k, `error_log` at warn, no "
        . "access log.  v2ray: one process (GOMAXPROCS = CPUs), inbound "
        . "vmess on 127.0.0.1 with the same user, outbound freedom, logs "
        . "off.\n", human($s->{bulk_bytes}),
        $s->{reps} == 1 ? 'one round' : "median of $s->{reps} rounds";
    $r .= $m->{pinned}
        ? "- CPU placement: with 1 connection every server (the nginx "
          . "worker, all of v2ray's threads) runs on CPU 0 and the load "
          . "generator and the targets on CPU $m->{load_cpus} (`taskset`); "
          . "with 8 connections nothing is pinned.  Unpinned, the "
          . "1-connection figures of every server vary by up to 50% from "
          . "run to run on this VM, with cross-CPU wakeups "
          . "(`pvm_irq_enable` in the profile below) as the cause.\n"
        : "- CPU placement: nothing pinned (one CPU, or no `taskset`).\n";
    $r .= "- Load generator: `objs/vmess-client upload|download` (16 KiB "
        . "chunks, options as v2ray clients send them: 0x0d for GCM and "
        . "ChaCha, 0x05 for none) against `vmess-client serve-sink` / "
        . "`serve-source`; for plain nginx and the relay the same client "
        . "with `--plain` moves the same bytes over plain TCP to the same "
        . "targets (same threads, poll loop and checks of the bytes; the "
        . "relay's downloads are counted, not checked: its cipher garbles "
        . "them).\n";
    $r .= "- Real client (section 0): v2ray 4.34 itself is the client, "
        . "one process with a dokodemo-door inbound per server and "
        . "direction; `vmess-client --plain` moves the bytes through it, "
        . "so the server sees what a user's v2ray sends and reads.  Bulk "
        . "cells are also run with the client sending chunks of v2ray's "
        . "size (section 1a).\n";
    $r .= "- Floor = plain nginx `proxy_pass` CPU-s/GiB (same direction, "
        . "connections, workers and buffers) + the bare EVP cost of the "
        . "cipher (`bench/crypto-cost`: 16 KiB chunks, open for upload, "
        . "seal for download; 0 for none).\n";
    $r .= "- In-situ floor: `bench/relay` is the smallest relay that does "
        . "the cipher work: poll, recv into one buffer of the same size per "
        . "direction, the AEAD in place over each 16 KiB of the stream "
        . "(seal for download, open for upload; tags computed and "
        . "dropped), send; no VMess parsing or framing.  Run with each "
        . "cipher and with none, in as many processes as nginx has workers "
        . "(they share the listening socket), loaded by `vmess-client "
        . "--plain` and placed like nginx.  Cipher in flight = relay with "
        . "the cipher - relay with none; in-situ floor = plain nginx + "
        . "cipher in flight.\n";
    $r .= sprintf "- Handshakes: `vmess-client handshakes`, 4 at a time, "
        . "each a new AEAD session echoing 64 bytes through the server to "
        . "an echo target; each measurement is sized to ~%d s after a "
        . "warm-up; %s, both servers up and measured in turns.  The "
        . "client is the last user of the list (nginx: `vmess_user_file`, "
        . "one uuid per line; v2ray: the same ids as `clients`).  nginx "
        . "with one worker.\n", $s->{hs_seconds},
        $s->{hs_reps} == 1 ? 'one round'
                           : "median of $s->{hs_reps} rounds";
    $r .= "- Memory: `vmess-client hold` opens N AEAD sessions (aes-128-gcm) "
        . "that each send a 16-byte chunk to an echo target and get it "
        . "back, then keeps them idle; VmRSS of the worker (one) or of "
        . "v2ray is read after 20 warm-up sessions and again 2 s after "
        . "the N-th session is up.  Plain nginx (`proxy_pass` to the echo "
        . "target, 16 bytes over plain TCP) is the floor of a stream "
        . "proxy, for context.\n";
    $r .= "- v2ray 4.34 drains a small share of genuine AEAD sessions "
        . "without answering: its access log says \"invalid user > "
        . "replayed request\" for them (its AuthID replay filter is a "
        . "cuckoo filter, which has false positives).  Such sessions are "
        . "left out of the session counts (their CPU stays in) and listed "
        . "in the notes at the end.  The cause was checked in separate "
        . "runs with v2ray's access log on (`--v2ray-access-log`), where "
        . "every unanswered session was logged that way; in measured runs "
        . "v2ray logs nothing, like nginx.\n\n";
    return $r;
}

# ----------------------------------------------------------- real client

sub real_cpu {
    my ($R, $key) = @_;
    return $R->{real}{$key} ? $R->{real}{$key}{cpu} : undef;
}

# plain nginx loaded by the same v2ray client + the bare cipher on chunks
# of v2ray's size
sub real_floor {
    my ($R, $buf, $dirn) = @_;
    return plus(real_cpu($R, "plain$buf|$dirn"),
                $R->{crypto_v2}{'aes-128-gcm'}{$dirn eq 'upload' ? 'open'
                                                                 : 'seal'});
}

sub real_section {
    my ($R) = @_;
    my @bufs = @{$R->{settings}{real_bufs}};
    my $r = "## 0. The real v2ray client as the load: server CPU seconds "
        . "per GiB\n\n"
        . "v2ray 4.34 as the client (dokodemo-door -> vmess outbound, "
        . "aes-128-gcm, AEAD, options 0x0d, chunks of at most 2048 "
        . "bytes), one connection, every server on CPU 0 with one nginx "
        . "worker; the v2ray client, the load generator and the targets on "
        . "the other CPUs and not counted.  Plain nginx is loaded by the "
        . "same v2ray client (freedom outbound).  Floor = plain nginx with "
        . "the same buffers + the bare cipher on chunks of v2ray's size ("
        . f2($R->{crypto_v2}{'aes-128-gcm'}{open}) . " open, "
        . f2($R->{crypto_v2}{'aes-128-gcm'}{seal}) . " seal).\n\n";
    $r .= "| direction | " . join(' | ', map { "module ${_}k" } @bufs)
        . " | v2ray | " . join(' | ', map { "plain nginx ${_}k" } @bufs)
        . " | " . join(' | ', map { "module ${_}k / v2ray" } @bufs)
        . " | " . join(' | ', map { "module ${_}k / floor" } @bufs)
        . " |\n|---|" . ('---:|' x (3 * @bufs + 1)) . ('---|' x @bufs)
        . "\n";
    for my $dirn (qw/upload download/) {
        my $lim = $dirn eq 'upload' ? 0.6 : 0.5;
        my $v = real_cpu($R, "v2ray|$dirn");
        my @m = map { real_cpu($R, "module$_|$dirn") } @bufs;
        $r .= "| $dirn | " . join(' | ', map { f2($_) } @m, $v,
                map { real_cpu($R, "plain$_|$dirn") } @bufs)
            . ' | ' . join(' | ', map { verdict(ratio($_, $v), $lim, 1) } @m)
            . ' | ' . join(' | ', map {
                  verdict(ratio($m[$_], real_floor($R, $bufs[$_], $dirn)),
                          1.25, 1)
              } 0 .. $#bufs) . " |\n";
    }
    my @spread = map {
        my $k = $_;
        my @a = sort { $a <=> $b } @{$R->{real}{$k}{all}};
        sprintf '%s %.2f-%.2f (%d)', $k =~ s/\|/ /r, $a[0], $a[-1],
            scalar @a
    } sort keys %{$R->{real}};
    $r .= "\nTargets: upload <= 0.60x v2ray, download <= 0.50x, module <= "
        . "1.25x the floor.  Rounds (min-max CPU-s/GiB, count): "
        . join('; ', @spread) . ".  Client throughput (MiB/s, median): "
        . join('; ', map {
              sprintf '%s %.0f', s/\|/ /r, $R->{real}{$_}{mibs}
          } sort keys %{$R->{real}}) . ".\n\n";
    return $r;
}

# ------------------------------------------------------------------- bulk

# the bulk tables once more for the "|v2" cells (the client sending chunks
# of v2ray's size), with plain nginx as it was and the bare cipher on
# v2ray-sized chunks as the floor
sub bulk_v2_section {
    my ($R) = @_;
    my %b = %{$R->{bulk}};
    for my $k (grep { /\|v2$/ } keys %b) {
        $b{$k =~ s/\|v2$//r} = $b{$k};
    }
    my $v = {%$R, bulk => \%b, crypto => $R->{crypto_v2}};
    my $c = $R->{settings}{v2ray_chunks};
    my $r = "## 1a. Bulk transfer with v2ray-sized chunks: server CPU "
        . "seconds per GiB\n\n"
        . "The module and v2ray as in section 1, the client sending "
        . "$c->{'aes-128-gcm'} bytes of data per chunk with the AEADs "
        . "(2048-byte chunks with options 0x0d, as v2ray clients send "
        . "them) and $c->{none} with none (v2ray's writer for none); "
        . "plain nginx as in section 1; bare crypto on "
        . "$c->{'aes-128-gcm'}-byte chunks.\n\n";
    for my $conns (1, 8) {
        $r .= conns_title($conns);
        $r .= bulk_table($v, $conns);
    }
    return $r . ratio_table($v);
}

sub bulk_section {
    my ($R) = @_;
    my $r = "## 1. Bulk transfer: server CPU seconds per GiB\n\n";
    for my $conns (1, 8) {
        $r .= conns_title($conns);
        $r .= bulk_table($R, $conns) . in_situ_table($R, $conns);
    }
    return $r . throughput_table($R) . crypto_line($R) . ratio_table($R)
        . spread_line($R);
}

sub conns_title {
    my ($conns) = @_;
    return sprintf "### %s\n\n", $conns == 1
        ? '1 connection, nginx with 1 worker'
        : '8 connections in parallel, nginx with 2 workers';
}

sub bulk_table {
    my ($R, $conns) = @_;
    my $r = "| security | direction | module 16k | module 128k | "
        . "v2ray | plain nginx 16k | plain nginx 128k | bare "
        . "crypto | floor 16k | floor 128k |\n";
    $r .= "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $sec (@{$R->{settings}{securities}}) {
        for my $dirn (qw/upload download/) {
            my $c = crypto_cost($R, $sec, $dirn);
            my @row = map { bulk_cpu($R, $_) } (
                "module16|$sec|$dirn|$conns",
                "module128|$sec|$dirn|$conns",
                "v2ray|$sec|$dirn|$conns",
                "plain16|-|$dirn|$conns",
                "plain128|-|$dirn|$conns");
            my @floor = map { plus($_, $c) } @row[3, 4];
            $r .= "| $sec | $dirn | "
                . join(' | ', map { f2($_) } @row, $c, @floor) . " |\n";
        }
    }
    return "$r\n";
}

sub in_situ_table {
    my ($R, $conns) = @_;
    my @bufs = @{$R->{settings}{bufs}};
    my $r = sprintf "In-situ floor, %s (`bench/relay`, CPU-s/GiB; see "
        . "Method):\n\n", $conns == 1 ? '1 connection'
                                     : "$conns connections, 2 processes";
    $r .= "| security | direction | relay 16k | relay 128k | cipher in "
        . "flight 16k | cipher in flight 128k | bare crypto | in-situ "
        . "floor 16k | in-situ floor 128k | module 16k / in-situ floor "
        . "| module 128k / in-situ floor |\n";
    $r .= "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n";
    for my $sec (@{$R->{settings}{securities}}) {
        for my $dirn (qw/upload download/) {
            my @cells = (
                (map { f2(bulk_cpu($R, "relay$_|$sec|$dirn|$conns")) }
                     @bufs),
                (map { f2(in_flight($R, $sec, $dirn, $_, $conns)) } @bufs),
                f2(crypto_cost($R, $sec, $dirn)),
                (map { f2(in_situ_floor($R, $sec, $dirn, $_, $conns)) }
                     @bufs),
                (map {
                    verdict(ratio(bulk_cpu($R, "module$_|$sec|$dirn|$conns"),
                                  in_situ_floor($R, $sec, $dirn, $_, $conns)),
                            1.25, 1)
                } @bufs));
            $r .= "| $sec | $dirn | " . join(' | ', @cells) . " |\n";
        }
    }
    $r .= "\nWhere the cipher in flight costs well above the bare loop, "
        . "that share is the cipher's on this machine, not the module's: "
        . "the relay runs the same EVP calls over the same bytes and does "
        . "nothing else.\n\n";
    return $r;
}

sub throughput_table {
    my ($R) = @_;
    my $r = "Client throughput in the same runs (MiB/s, wall clock, "
        . "for context only; the client shares the CPUs):\n\n";
    $r .= "| security | direction | conns | module 16k | module 128k "
        . "| v2ray | plain 16k | plain 128k |\n";
    $r .= "|---|---|---:|---:|---:|---:|---:|---:|\n";
    for my $conns (1, 8) {
        for my $sec (@{$R->{settings}{securities}}) {
            for my $dirn (qw/upload download/) {
                my @m = map {
                    $R->{bulk}{$_} ? sprintf('%.0f', $R->{bulk}{$_}{mibs})
                                   : 'n/a'
                } ("module16|$sec|$dirn|$conns",
                   "module128|$sec|$dirn|$conns",
                   "v2ray|$sec|$dirn|$conns",
                   "plain16|-|$dirn|$conns", "plain128|-|$dirn|$conns");
                $r .= "| $sec | $dirn | $conns | " . join(' | ', @m)
                    . " |\n";
            }
        }
    }
    return "$r\n";
}

sub crypto_line {
    my ($R) = @_;
    my $c = $R->{crypto};
    return "Bare crypto (`bench/crypto-cost`, CPU-s/GiB): "
        . join('; ', map {
              "$_ seal " . f2($c->{$_}{seal}) . ", open " . f2($c->{$_}{open})
          } qw/aes-128-gcm chacha20-poly1305/) . ".\n\n";
}

sub ratio_table {
    my ($R) = @_;
    my @bufs = @{$R->{settings}{bufs}};
    my $r = "Ratios (module / reference; targets: download <= 0.50x "
        . "v2ray, upload <= 0.60x v2ray, both <= 1.25x floor with the "
        . "same buffers):\n\n";
    $r .= "| security | direction | conns | 16k / v2ray | 128k / v2ray "
        . "| 16k / floor 16k | 128k / floor 128k "
        . "| floor 16k / v2ray | floor 128k / v2ray |\n";
    $r .= "|---|---|---:|---|---|---|---|---:|---:|\n";
    for my $conns (1, 8) {
        for my $sec (@{$R->{settings}{securities}}) {
            for my $dirn (qw/upload download/) {
                my $lim = $dirn eq 'download' ? 0.5 : 0.6;
                my $v = bulk_cpu($R, "v2ray|$sec|$dirn|$conns");
                my @ours = map { bulk_cpu($R, "module$_|$sec|$dirn|$conns") }
                    @bufs;
                my @floor = map { floor($R, $sec, $dirn, $_, $conns) } @bufs;
                my @cells = (
                    (map { verdict(ratio($_, $v), $lim, 1) } @ours),
                    (map { verdict(ratio($ours[$_], $floor[$_]), 1.25, 1) }
                         0 .. $#bufs),
                    (map {
                        my $f = ratio($_, $v);
                        defined $f ? sprintf('%.2f', $f) : '-'
                    } @floor));
                $r .= "| $sec | $dirn | $conns | " . join(' | ', @cells)
                    . " |\n";
            }
        }
    }
    $r .= "The last two columns are the floor itself against v2ray: "
        . "where they exceed the target (0.50 download, 0.60 upload), "
        . "plain nginx `proxy_pass` with the same buffers plus the bare "
        . "cipher alone costs more than the target allows, so no module "
        . "inside that proxy can meet it.\n\n";
    return $r;
}

# the min-max of the module's 1-connection rounds, with more than one
sub spread_line {
    my ($R) = @_;
    return '' unless $R->{settings}{reps} > 1;
    my @spread;
    for my $sec (@{$R->{settings}{securities}}) {
        for my $dirn (qw/upload download/) {
            for my $buf (@{$R->{settings}{bufs}}) {
                my $k = "module$buf|$sec|$dirn|1";
                my @a = sort { $a <=> $b }
                    @{$R->{bulk}{$k} ? $R->{bulk}{$k}{all} : []};
                push @spread, sprintf('%s %s %dk %.2f-%.2f', $sec, $dirn,
                                      $buf, $a[0], $a[-1])
                    if @a;
            }
        }
    }
    return "Spread of the rounds (min-max CPU-s/GiB), module, 1 "
        . "connection: " . join('; ', @spread) . ".\n\n";
}

# ---------------------------------------------------------------- buffers

sub buffers_section {
    my ($R) = @_;
    my $b = $R->{buffers};
    my $r = "## 1b. `proxy_buffer_size`: server CPU seconds per GiB\n\n";
    $r .= "aes-128-gcm, 1 connection, one nginx worker on CPU 0; "
        . "module / (plain nginx with the same buffers + bare crypto) "
        . "in the last two columns.\n\n";
    $r .= "| proxy_buffer_size | module upload | module download "
        . "| plain upload | plain download | upload / floor "
        . "| download / floor |\n";
    $r .= "|---:|---:|---:|---:|---:|---:|---:|\n";
    for my $buf (@{$R->{settings}{sweep_bufs}}) {
        my @row = map { $b->{$_} } ("module$buf|upload",
            "module$buf|download", "plain$buf|upload",
            "plain$buf|download");
        $r .= sprintf "| %dk | %s | %s | %s | %s | %s | %s |\n", $buf,
            (map { f2($_) } @row),
            f2(ratio($row[0], plus($row[2],
                                   crypto_cost($R, 'aes-128-gcm', 'upload')))),
            f2(ratio($row[1], plus($row[3], crypto_cost($R, 'aes-128-gcm',
                                                        'download'))));
    }
    return "$r\n";
}

# --------------------------------------------------------------- counters

sub stats_section {
    my ($R) = @_;
    my $t = "## 1c. Per-user counters: on and off\n\n"
        . "Server CPU-s/GiB of one nginx worker (on CPU 0) with two "
        . "servers that differ only in `vmess_stats off`, measured one "
        . "after the other in the same rounds (median of "
        . "$R->{settings}{reps}), one connection, "
        . "`proxy_buffer_size 64k`. Target: on / off <= 1.03.\n\n"
        . "| security | direction | on | off | on / off |\n"
        . "|---|---|---|---|---|\n";
    for my $key (sort keys %{$R->{stats}}) {
        my ($sec, $dirn) = split /\|/, $key;
        my $c = $R->{stats}{$key};
        $t .= "| $sec | $dirn | " . f2($c->{on}) . ' | ' . f2($c->{off})
            . ' | ' . verdict(ratio($c->{on}, $c->{off}), 1.03, 1)
            . " |\n";
    }
    return "$t\n";
}

# ------------------------------------------------------- handshakes, memory

sub handshakes_section {
    my ($R) = @_;
    my $r = "## 2. Handshakes: new authenticated sessions per server CPU "
        . "second\n\n";
    $r .= "| users | module | v2ray | module / v2ray (target >= 3x at 1 "
        . "and 10,000) | module sessions/s | v2ray sessions/s | "
        . "sessions per round (module, v2ray) | rounds min-max "
        . "(module; v2ray) |\n";
    $r .= "|---:|---:|---:|---|---:|---:|---|---|\n";
    for my $n (@{$R->{settings}{user_counts}}) {
        my ($m, $v) = @{$R->{hs}{$n}}{qw/module v2ray/};
        my $ra = hs_ratio($R, $n);
        $r .= sprintf "| %d | %s | %s | %s | %s | %s | %s, %s | %s |\n",
            $n,
            $m ? sprintf('%.0f', $m->{per_cpu}) : 'n/a',
            $v ? sprintf('%.0f', $v->{per_cpu}) : 'n/a',
            $n == 1000 ? (defined $ra ? sprintf('%.2f', $ra) : 'n/a')
                       : verdict($ra, 3, 0),
            $m ? sprintf('%.0f', $m->{per_s}) : 'n/a',
            $v ? sprintf('%.0f', $v->{per_s}) : 'n/a',
            $m ? $m->{sessions} : '-', $v ? $v->{sessions} : '-',
            join('; ', map {
                $_ ? sprintf('%.0f-%.0f', $_->{min}, $_->{max}) : 'n/a'
            } $m, $v);
    }
    my ($all, $api) = @{$R->{hs}{10000} // {}}{qw/module api/};
    $r .= sprintf "\nWith 10,000 users of which 5,000 were added through "
        . "the HTTP API (the client among those): %.0f sessions per CPU "
        . "second, %.0f per second (all 10,000 from the file: %s).\n",
        $api->{per_cpu}, $api->{per_s},
        $all ? sprintf('%.0f', $all->{per_cpu}) : 'n/a'
        if $api;
    return "$r\n";
}

sub memory_section {
    my ($R) = @_;
    my $s = $R->{settings};
    my $r = "## 3. Memory: server RSS growth per idle authenticated "
        . "session\n\n";
    $r .= "| sessions | module 16k | module 128k | v2ray | 16k / v2ray "
        . "| 128k / v2ray | plain nginx 16k | RSS before -> after, KiB "
        . "(module 16k; 128k; v2ray; plain 16k) |\n";
    $r .= "|---:|---:|---:|---:|---|---|---:|---|\n";
    my $per = sub {
        my ($x) = @_;
        return 'n/a' unless $x;
        return sprintf '%.1f KiB', $x->{per_conn} / 1024;
    };
    for my $n (@{$s->{mem_counts}}) {
        my $m = $R->{mem}{$n};
        $r .= sprintf "| %d | %s | %s | %s | %s | %s | %s | %s |\n", $n,
            $per->($m->{module16}), $per->($m->{module128}),
            $per->($m->{v2ray}), mem_verdict($m, 'module16'),
            mem_verdict($m, 'module128'), $per->($m->{plain16}),
            join('; ', map {
                $m->{$_} ? "$m->{$_}{before} -> $m->{$_}{after}" : 'n/a'
            } qw/module16 module128 v2ray plain16/);
    }
    $r .= "\n";
    if ($s->{mem_high} < 10000 && !$s->{quick}) {
        $r .= "The largest count is $s->{mem_high}, not 10,000: the hard "
            . "limit on open files here is $s->{nofile} and cannot be "
            . "raised (no CAP_SYS_RESOURCE), while nginx's one worker "
            . "and v2ray each need two descriptors per session (client "
            . "and upstream).\n\n";
    }
    return $r;
}

# --------------------------------------------------------------- refusals

my %probe_name = (random => '64 random bytes',
                  wrong_user => 'AEAD header of an unknown user',
                  replay => 'replayed AEAD header');

sub refusals_section {
    my ($R) = @_;
    my ($f, $s) = ($R->{refusals}, $R->{settings});
    my $r = "## 4. Refusals: server CPU per refused connection\n\n";
    $r .= sprintf "%d users on both servers (nginx: `vmess_user_file`, one "
        . "worker, no `vmess_fallback`, so the module drains; v2ray: the "
        . "same ids as `clients`).  `vmess-client probe` opens the "
        . "connections, %d at a time, sends the probe and closes at once "
        . "without reading, so neither server's drain nor its timeout sets "
        . "the pace; a measurement ends when the server holds none of the "
        . "connections (none of its port's sockets established or in "
        . "close-wait in `/proc/net/tcp`), and its cost is the server's "
        . "utime + stime over it.  Each measurement is sized to ~%d s of "
        . "server CPU after a warm-up of 20 probes (200 when those took "
        . "under 0.1 s; at most %d probes); "
        . "%s.  Both servers log every refusal in these runs (nginx's "
        . "`error_log` at info, which also logs each connection; v2ray's "
        . "access log), and the lines of each measurement are counted "
        . "(v2ray's are a floor: its logger drops a message when 16 are "
        . "waiting, `common/log/logger.go`).  "
        . "The replayed header is that of a session the server has just "
        . "authenticated (the last user of the list), made again before "
        . "each measurement.  Refusals/s: probes over the wall time from "
        . "the first connection to the last one gone.  The load "
        . "generator's CPU (its own `getrusage`) is per probe sent.\n\n",
        $f->{users}, $f->{threads}, $s->{hs_seconds}, $s->{refusals_max},
        $s->{hs_reps} == 1 ? 'one round'
                           : "median of $s->{hs_reps} rounds";
    $r .= "| probe | module µs/refusal | v2ray µs/refusal | module / v2ray "
        . "| module refusals/s | v2ray refusals/s | probes (module, v2ray) "
        . "| logged as refused (module; v2ray) | proxied (module; v2ray) "
        . "| load generator µs/probe (module; v2ray) | rounds min-max µs "
        . "(module; v2ray) |\n";
    $r .= "|---|---:|---:|---:|---:|---:|---|---|---|---|---|\n";
    for my $kind (qw/random wrong_user replay/) {
        my ($m, $v) = @{$f->{$kind} // {}}{qw/module v2ray/};
        my $num = sub {
            my ($x, $k, $fmt) = @_;
            return $x ? sprintf($fmt // '%.0f', $x->{$k}) : 'n/a';
        };
        $r .= sprintf "| %s | %s | %s | %s | %s | %s | %s, %s | %s; %s "
            . "| %s; %s | %s; %s | %s |\n", $probe_name{$kind},
            $num->($m, 'us'), $num->($v, 'us'),
            f2(ratio($m && $m->{us}, $v && $v->{us})),
            $num->($m, 'per_s'), $num->($v, 'per_s'),
            $num->($m, 'n'), $num->($v, 'n'),
            $num->($m, 'logged'), $num->($v, 'logged'),
            $num->($m, 'through'), $num->($v, 'through'),
            $num->($m, 'client_us'), $num->($v, 'client_us'),
            join('; ', map {
                $_ ? sprintf('%.0f-%.0f', $_->{min}, $_->{max}) : 'n/a'
            } $m, $v);
    }
    return "$r\n";
}

# ---------------------------------------------------------------- targets

sub targets_section {
    my ($R) = @_;
    my @t;
    if ($R->{real}) {
        for my $buf (@{$R->{settings}{real_bufs}}) {
            push @t, map { real_target($R, $buf, @$_) }
                         ['upload', 0.6], ['download', 0.5];
        }
    }
    if ($R->{bulk}) {
        for my $buf (@{$R->{settings}{bufs}}) {
            push @t, map { v2ray_target($R, $buf, @$_) }
                         ['download', 0.5], ['upload', 0.6];
            push @t, map { floor_target($R, $buf, $_) } qw/upload download/;
        }
    }
    if ($R->{hs}) {
        push @t, map {
            sprintf "handshakes/CPU-s >= 3x v2ray at %d users: %s", $_,
                verdict(hs_ratio($R, $_), 3, 0)
        } 1, 10000;
    }
    if ($R->{mem}) {
        push @t, map {
            my $m = $R->{mem}{$_};
            sprintf "memory/idle session <= 0.25x v2ray at %d: 16k %s, "
                . "128k %s", $_, mem_verdict($m, 'module16'),
                mem_verdict($m, 'module128')
        } @{$R->{settings}{mem_counts}};
    }
    my $pass = () = join(' ', @t) =~ /PASS/g;
    my $miss = () = join(' ', @t) =~ /MISS/g;
    return "## Targets\n\n"
        . "$pass checks PASS, $miss MISS (each bulk cell is one check).\n\n"
        . join('', map { "- $_\n" } @t) . "\n"
        . "For context only, not measured in this run: figures measured "
        . "earlier on this class of machine were v2ray 0.91 (upload) / "
        . "1.01 (download) CPU-s/GiB, plain nginx proxy 0.43 / 0.32 with "
        . "128k buffers and 0.55 / 0.65 with 16k, AES-128-GCM about 0.19 "
        . "CPU-s/GiB.\n\n";
}

# the real client's cells: module / v2ray <= $lim (a miss is out of reach
# where the floor alone is above $lim) and module / (plain nginx + the
# bare cipher on v2ray-sized chunks) <= 1.25
sub real_target {
    my ($R, $buf, $dirn, $lim) = @_;
    my $m = real_cpu($R, "module$buf|$dirn");
    my $v = real_cpu($R, "v2ray|$dirn");
    my $floor = real_floor($R, $buf, $dirn);
    my $ra = ratio($m, $v);
    my $floor_ra = ratio($floor, $v);
    my $cell = verdict($ra, $lim, 1);
    $cell .= sprintf ' (out of reach: floor %.2f)', $floor_ra
        if defined $ra && $ra > $lim && defined $floor_ra && $floor_ra > $lim;
    return sprintf "real v2ray client, CPU/GiB %s, %dk buffers: module / "
        . "v2ray <= %.1f: %s; module / floor <= 1.25: %s", $dirn, $buf,
        $lim, $cell, verdict(ratio($m, $floor), 1.25, 1);
}

# module / v2ray <= $lim; a miss is out of reach where the floor (or the
# in-situ floor) alone is above $lim
sub v2ray_target {
    my ($R, $buf, $dirn, $lim) = @_;
    my @cells;
    for my $conns (1, 8) {
        for my $sec (@{$R->{settings}{securities}}) {
            my $v = bulk_cpu($R, "v2ray|$sec|$dirn|$conns");
            my $ra = ratio(bulk_cpu($R, "module$buf|$sec|$dirn|$conns"), $v);
            my $floor = ratio(floor($R, $sec, $dirn, $buf, $conns), $v);
            my $in_situ = ratio(in_situ_floor($R, $sec, $dirn, $buf, $conns),
                                $v);
            my $cell = "$sec x$conns " . verdict($ra, $lim, 1);
            if (defined $ra && $ra > $lim) {
                if (defined $floor && $floor > $lim) {
                    $cell .= sprintf ' (out of reach: floor %.2f)', $floor;
                } elsif (defined $in_situ && $in_situ > $lim) {
                    $cell .= sprintf ' (out of reach: in-situ floor %.2f)',
                        $in_situ;
                }
            }
            push @cells, $cell;
        }
    }
    return sprintf "CPU/GiB %s <= %.1fx v2ray, %dk buffers: %s", $dirn,
        $lim, $buf, join(', ', @cells);
}

# module / floor <= 1.25; a miss is out of reach where the in-situ floor
# alone is above 1.25x the floor
sub floor_target {
    my ($R, $buf, $dirn) = @_;
    my @cells;
    for my $conns (1, 8) {
        for my $sec (@{$R->{settings}{securities}}) {
            my $floor = floor($R, $sec, $dirn, $buf, $conns);
            my $ra = ratio(bulk_cpu($R, "module$buf|$sec|$dirn|$conns"),
                           $floor);
            my $in_situ = ratio(in_situ_floor($R, $sec, $dirn, $buf, $conns),
                                $floor);
            my $cell = "$sec x$conns " . verdict($ra, 1.25, 1);
            $cell .= sprintf ' (out of reach: in-situ floor %.2fx the '
                . 'floor; module %.2fx the in-situ floor)', $in_situ,
                $ra / $in_situ
                if defined $ra && $ra > 1.25 && defined $in_situ
                   && $in_situ > 1.25;
            push @cells, $cell;
        }
    }
    return sprintf "CPU/GiB %s <= 1.25x (plain nginx + crypto), %dk "
        . "buffers: %s", $dirn, $buf, join(', ', @cells);
}

# ---------------------------------------------------------- profile, notes

sub profile_section {
    my ($R) = @_;
    my $p = $R->{profile};
    my $r = "## Profile of the nginx worker (perf record -F 1999)\n\n";
    $r .= "### aes-128-gcm, the real v2ray client as the load, 16k "
        . "buffers, 1 connection\n\n"
        . "Where a real client's traffic (chunks of at most 2048 bytes) "
        . "goes in the worker: with one AEAD open or seal per chunk, "
        . "OpenSSL's per-call work (`EVP_CipherInit_ex`, which looks up the "
        . "IV length through `OSSL_PARAM`s, and the tag parameter: the "
        . "`strcmp` and `OSSL_PARAM_locate` lines) adds to the cipher's "
        . "assembler, and the kernel's share is that of any proxy.\n\n"
        . profile_tables($p->{real}) if $p->{real};
    $r .= "### aes-128-gcm, vmess-client as the load (16 KiB chunks), "
        . "128k buffers, 1 connection\n\n" . profile_tables($p);
    return $r . profile_none_section($R);
}

# the by-object and top-symbol tables of a profile's upload and download
sub profile_tables {
    my ($p) = @_;
    my $r = "Share of the worker's samples by object:\n\n";
    $r .= "| upload % | download % | object |\n|---:|---:|---|\n";
    my @dirs = qw/upload download/;
    $r .= join '', map { "| " . join(' | ', @$_) . " |\n" }
        by_object([map { $p->{dsos}{$_} } @dirs]);
    $r .= "\nTop symbols (libcrypto has no symbols for its assembler "
        . "here: its share is in the table above):\n\n";
    for my $dirn (@dirs) {
        my $top = $p->{symbols}{$dirn} or next;
        $r .= "$dirn:\n\n| % | object | symbol |\n|---:|---|---|\n";
        $r .= join('', map { "| $_->[0] | $_->[1] | `$_->[2]` |\n" } @$top)
            . "\n";
    }
    return $r;
}

sub profile_none_section {
    my ($R) = @_;
    my $none = $R->{profile}{none};
    my $r = "### Security none, 16k buffers, 1 connection: the module "
        . "next to plain nginx\n\n"
        . "Without a cipher, what the module adds is its own code "
        . "(`ngx_stream_vmess_module.so`) and whatever it changes in "
        . "the kernel's work.  Share of the worker's samples by object "
        . ($R->{machine}{pinned}
           ? "(the worker on CPU 0, the client on the others)"
           : "(nothing pinned)")
        . ":\n\n"
        . "| object | module upload % | plain upload % "
        . "| module download % | plain download % |\n"
        . "|---|---:|---:|---:|---:|\n";
    my @cols = qw/module|upload plain|upload module|download
                  plain|download/;
    $r .= join '', map {
        my ($dso, @pct) = @$_[-1, 0 .. $#cols];
        "| $dso | " . join(' | ', @pct) . " |\n"
    } by_object([map { $none->{$_} } @cols]);
    return "$r\n";
}

# perf's [[percent, object], ...] of some runs, one row per object:
# [percent in each run or '-', object], by the first run's share, largest
# first
sub by_object {
    my ($runs) = @_;
    my %by;
    for my $i (0 .. $#$runs) {
        $by{$_->[1]}[$i] = $_->[0] for @{$runs->[$i] // []};
    }
    return map {
        my $dso = $_;
        [(map { $by{$dso}[$_] // '-' } 0 .. $#$runs), $dso]
    } sort { ($by{$b}[0] // 0) <=> ($by{$a}[0] // 0) } keys %by;
}

sub notes_section {
    my ($R) = @_;
    return "## Notes from this run\n\n"
        . join('', map { "- $_\n" } @{$R->{notes}}) . "\n";
}

1;
