# 5. counters: server CPU seconds per GiB with the per-user counters on
# (the default) and off (vmess_stats off), in the same nginx and the same
# rounds: two servers of one worker that differ only in that directive,
# measured one after the other, upload and download, 1 connection, the
# worker on CPU 0.
package VmessBench::Stats;

use strict;
use warnings;

use Exporter 'import';

use VmessBench::Load qw/bulk_one/;
use VmessBench::Proc qw/stop free_port placement pin/;
use VmessBench::Servers qw/nginx_start nginx_stop transfer_targets/;
use VmessBench::Util qw/progress median/;

our @EXPORT_OK = qw/stats/;

# the ciphers of the cells: none, where the counters' share is largest,
# and aes-128-gcm, the usual one
my @SECS = qw/none aes-128-gcm/;

# {"sec|dir" => {on => median CPU-s/GiB, off => ..., n => rounds}}; undef
# if no transfer succeeded
sub stats {
    my ($ctx) = @_;
    progress("counters: on and off, $ctx->{reps} rounds");
    my ($target, @target_pids) = transfer_targets($ctx);
    pin(placement()->{load_cpus}, @target_pids);
    my %port = (on => free_port(), off => free_port());
    my $srv = nginx_start($ctx, name => 'stats', workers => 1,
                          vmess => [[$port{on}, 64],
                                    [$port{off}, 64, 'off']]);
    pin('0', @{$srv->{pids}});
    my %runs;
    for my $rep (1 .. $ctx->{reps}) {
        for my $sec (@SECS) {
            for my $dirn (qw/upload download/) {
                # alternating which goes first, so neither is always warm
                my @order = $rep % 2 ? qw/on off/ : qw/off on/;
                for my $which (@order) {
                    my $r = bulk_one($ctx, $srv, 'vmess', $port{$which},
                                     $target->{$dirn}, $sec, $dirn, 1);
                    push @{$runs{"$sec|$dirn"}{$which}}, $r->{cpu_gib}
                        if $r;
                }
            }
        }
        progress("counters: round $rep of $ctx->{reps} done");
    }
    nginx_stop($srv);
    stop($_) for @target_pids;

    my %stats;
    for my $key (keys %runs) {
        my ($on, $off) = @{$runs{$key}}{qw/on off/};
        next unless $on && $off;
        $stats{$key} = {on => median(@$on), off => median(@$off),
                        n => scalar @$on};
    }
    return %stats ? \%stats : undef;
}

1;
