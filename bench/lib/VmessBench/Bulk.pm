# 1. bulk and 1b. buffers: server CPU seconds per GiB moved, the module
# next to v2ray, plain nginx and bench/relay; and the bare cipher cost
# (bench/crypto-cost) that the floor adds to plain nginx.
package VmessBench::Bulk;

use strict;
use warnings;

use Exporter 'import';

use VmessBench::Load qw/bulk_one/;
use VmessBench::Proc qw/stop run_cmd free_port placement pin/;
use VmessBench::Servers qw/nginx_start nginx_stop v2ray_start v2ray_stop
                           relay_start transfer_targets/;
use VmessBench::Util qw/progress note median/;

our @EXPORT_OK = qw/crypto bulk buffers transfer_medians/;

# {cipher => {seal|open => CPU-s/GiB}}, none costing 0; $chunk plaintext
# bytes per chunk (crypto-cost's 16 KiB if undef)
sub crypto {
    my ($ctx, $chunk) = @_;
    my %c;
    my ($rc, $out) = run_cmd(120, "$ctx->{bin}/crypto-cost",
                             $ctx->{crypto_gib}, $chunk // ());
    for (split /\n/, $out) {
        my ($c, $op, $v, $g) =
            /^(\S+) (seal|open) cpu_s_per_gib=([\d.]+) gib_per_s=([\d.]+)/
            or next;
        $c{$c}{$op} = $v;
    }
    note("crypto-cost failed ($rc): $out") if $rc ne '0';
    $c{none} = {seal => 0, open => 0};
    return \%c;
}

# {"server|sec|dir|conns" => {cpu => median CPU-s/GiB, mibs => median
# MiB/s, n => rounds, all => [CPU-s/GiB of each]}}, server module16,
# module128, plain16 (sec "-"), relay16, v2ray, ...; the module's and
# v2ray's cells once more with the client sending chunks of v2ray's size
# ($ctx->{v2ray_chunks}), under the same key and "|v2"; undef if no
# transfer succeeded
sub bulk {
    my ($ctx) = @_;
    my $reps = $ctx->{reps};
    progress("bulk: $reps x " . ($ctx->{bulk_bytes} >> 20)
             . " MiB per transfer");
    my ($target, @target_pids) = transfer_targets($ctx);
    my %runs;   # key as above => {cpu => [...], mibs => [...]}
    for my $rep (1 .. $reps) {
        for my $workers (1, 2) {
            bulk_round($ctx, \%runs, $rep, $workers, $target, @target_pids);
        }
        progress("bulk: round $rep of $reps done");
    }
    stop($_) for @target_pids;
    return transfer_medians(\%runs);
}

# {key => {cpu => [...], mibs => [...]}} of the rounds' transfers as {key
# => {cpu => median, mibs => median, n => rounds, all => [cpu of each]}};
# undef if there was none
sub transfer_medians {
    my ($runs) = @_;
    my %m;
    for my $key (keys %$runs) {
        $m{$key} = {cpu => median(@{$runs->{$key}{cpu}}),
                    mibs => median(@{$runs->{$key}{mibs}}),
                    n => scalar @{$runs->{$key}{cpu}},
                    all => $runs->{$key}{cpu}};
    }
    return %m ? \%m : undef;
}

# 1 connection with 1 nginx worker (pinned: the server on CPU 0, the rest
# on the others) or 8 connections with 2 workers (nothing pinned)
sub bulk_round {
    my ($ctx, $runs, $rep, $workers, $target, @target_pids) = @_;
    my $conns = $workers == 1 ? 1 : 8;
    my $place = placement();
    pin($conns == 1 ? $place->{load_cpus} : $place->{all_cpus},
        @target_pids);
    my $round = {runs => $runs, workers => $workers, conns => $conns,
                 cpus => $conns == 1 ? '0' : $place->{all_cpus},
                 target => $target};
    bulk_module($ctx, $round);
    bulk_plain($ctx, $round);
    bulk_relay($ctx, $round);
    bulk_v2ray($ctx, $round, $rep);
}

# a transfer's figures (if it succeeded) under $key among the round's
sub record {
    my ($round, $key, $r) = @_;
    return unless $r;
    push @{$round->{runs}{$key}{cpu}}, $r->{cpu_gib};
    push @{$round->{runs}{$key}{mibs}}, $r->{mibs};
}

sub bulk_module {
    my ($ctx, $round) = @_;
    my ($workers, $conns, $target) = @$round{qw/workers conns target/};
    my ($ours, $port) = module_server($ctx, "bulk-module-w$workers",
                                      $workers, $ctx->{bufs});
    pin($round->{cpus}, @{$ours->{pids}});
    for my $sec (@{$ctx->{securities}}) {
        for my $dirn (qw/upload download/) {
            for my $buf (@{$ctx->{bufs}}) {
                for my $c (chunk_sizes($ctx, $sec)) {
                    record($round, "module$buf|$sec|$dirn|$conns$c->[0]",
                        bulk_one($ctx, $ours, 'vmess', $port->{$buf},
                                 $target->{$dirn}, $sec, $dirn, $conns,
                                 $c->[1]));
                }
            }
        }
    }
    nginx_stop($ours);
}

sub bulk_plain {
    my ($ctx, $round) = @_;
    my ($workers, $conns, $target) = @$round{qw/workers conns target/};
    my ($plain, $port) = plain_server($ctx, "bulk-plain-w$workers",
                                      $workers, $ctx->{bufs}, $target);
    pin($round->{cpus}, @{$plain->{pids}});
    for my $dirn (qw/upload download/) {
        for my $buf (@{$ctx->{bufs}}) {
            record($round, "plain$buf|-|$dirn|$conns",
                bulk_one($ctx, $plain, 'plain', $port->{"$buf|$dirn"},
                         undef, '-', $dirn, $conns));
        }
    }
    nginx_stop($plain);
}

# the in-situ floor: one relay per cipher, direction and buffer
sub bulk_relay {
    my ($ctx, $round) = @_;
    my ($workers, $conns, $target) = @$round{qw/workers conns target/};
    for my $sec (@{$ctx->{securities}}) {
        for my $dirn (qw/upload download/) {
            for my $buf (@{$ctx->{bufs}}) {
                my ($relay, $port) = relay_start($ctx, $sec, $dirn, $buf,
                    $target->{$dirn}, $workers);
                pin($round->{cpus}, @{$relay->{pids}});
                record($round, "relay$buf|$sec|$dirn|$conns",
                    bulk_one($ctx, $relay, 'relay', $port, undef, '-',
                             $dirn, $conns));
                stop($relay->{pids}[0]);
            }
        }
    }
}

sub bulk_v2ray {
    my ($ctx, $round, $rep) = @_;
    my ($workers, $conns, $target) = @$round{qw/workers conns target/};
    my $vport = free_port();
    my $v2 = v2ray_start($ctx, "bulk-v2ray-$rep-$workers", $vport,
                         [$ctx->{uuid}]);
    pin($round->{cpus}, $v2->{pid});
    for my $sec (@{$ctx->{securities}}) {
        for my $dirn (qw/upload download/) {
            for my $c (chunk_sizes($ctx, $sec)) {
                record($round, "v2ray|$sec|$dirn|$conns$c->[0]",
                    bulk_one($ctx, $v2, 'vmess', $vport, $target->{$dirn},
                             $sec, $dirn, $conns, $c->[1]));
            }
        }
    }
    v2ray_stop($v2);
}

# the client's chunk sizes for $sec as [key suffix, --chunk]: its own
# 16 KiB, then v2ray's size
sub chunk_sizes {
    my ($ctx, $sec) = @_;
    return (['', undef], ['|v2', $ctx->{v2ray_chunks}{$sec}]);
}

# {"module|plain" . buf . "|" . dir => median CPU-s/GiB}: aes-128-gcm, 1
# connection, pinned as in bulk; undef if no transfer succeeded
sub buffers {
    my ($ctx) = @_;
    my @bufs = @{$ctx->{sweep_bufs}};
    progress("buffers: proxy_buffer_size "
             . join(', ', map { "${_}k" } @bufs));
    my ($target, @target_pids) = transfer_targets($ctx);
    my %runs;
    pin(placement()->{load_cpus}, @target_pids);
    for my $rep (1 .. $ctx->{reps}) {
        my ($ours, $vp) = module_server($ctx, "buffers-module-$rep", 1,
                                        \@bufs);
        buffers_sweep($ctx, \%runs, 'module', $ours, sub {
            my ($buf, $dirn) = @_;
            bulk_one($ctx, $ours, 'vmess', $vp->{$buf}, $target->{$dirn},
                     'aes-128-gcm', $dirn, 1);
        });
        my ($plain, $pp) = plain_server($ctx, "buffers-plain-$rep", 1,
                                        \@bufs, $target);
        buffers_sweep($ctx, \%runs, 'plain', $plain, sub {
            my ($buf, $dirn) = @_;
            bulk_one($ctx, $plain, 'plain', $pp->{"$buf|$dirn"}, undef, '-',
                     $dirn, 1);
        });
        progress("buffers: round $rep of $ctx->{reps} done");
    }
    stop($_) for @target_pids;
    return %runs ? {map { $_ => median(@{$runs{$_}}) } keys %runs} : undef;
}

# every buffer size and direction, $one->(buf, dir), on one server, its
# worker on CPU 0; the server is stopped after
sub buffers_sweep {
    my ($ctx, $runs, $who, $srv, $one) = @_;
    pin('0', @{$srv->{pids}});
    for my $buf (@{$ctx->{sweep_bufs}}) {
        for my $dirn (qw/upload download/) {
            my $r = $one->($buf, $dirn);
            push @{$runs->{"$who$buf|$dirn"}}, $r->{cpu_gib} if $r;
        }
    }
    nginx_stop($srv);
}

# nginx with the module, a server for each buffer size: (server,
# {buf => port})
sub module_server {
    my ($ctx, $name, $workers, $bufs) = @_;
    my %port = map { $_ => free_port() } @$bufs;
    my $srv = nginx_start($ctx, name => $name, workers => $workers,
                          vmess => [map { [$port{$_}, $_] } @$bufs]);
    return ($srv, \%port);
}

# plain nginx, a server for each buffer size and direction with that
# direction's target upstream: (server, {"buf|dir" => port})
sub plain_server {
    my ($ctx, $name, $workers, $bufs, $target) = @_;
    my (%port, @plain);
    for my $buf (@$bufs) {
        for my $dirn (qw/upload download/) {
            $port{"$buf|$dirn"} = free_port();
            push @plain, [$port{"$buf|$dirn"}, $buf, $target->{$dirn}];
        }
    }
    my $srv = nginx_start($ctx, name => $name, workers => $workers,
                          plain => \@plain);
    return ($srv, \%port);
}

1;
