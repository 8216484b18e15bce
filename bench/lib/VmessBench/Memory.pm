# 3. memory: server RSS growth per idle authenticated session, the module
# with 16k and 128k buffers next to v2ray and plain nginx.
package VmessBench::Memory;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/time sleep/;

use VmessBench::Load qw/hold_cmd hold_warmup hold_open/;
use VmessBench::Proc qw/stop free_port rss_kib/;
use VmessBench::Servers qw/nginx_start nginx_stop v2ray_start v2ray_stop
                           target/;
use VmessBench::Util qw/progress/;

our @EXPORT_OK = qw/memory/;

# {sessions => {module16|module128|plain16|v2ray => RSS before and after,
# per session in bytes; undef if too few sessions were held}}
sub memory {
    my ($ctx) = @_;
    my @counts = @{$ctx->{mem_counts}};
    progress("memory: @counts idle sessions (open files: $ctx->{nofile})");
    my %mem;
    for my $n (@counts) {
        $mem{$n} = memory_count($ctx, $n);
        progress("memory: $n sessions done");
    }
    return \%mem;
}

# nginx with one worker: two descriptors per session and a few of its own
sub memory_count {
    my ($ctx, $n) = @_;
    my $conns = 2 * $n + 200;
    my %mem;
    for my $buf (@{$ctx->{bufs}}) {
        $mem{"module$buf"} = memory_on($ctx, $n, undef, sub {
            nginx_start($ctx, name => "mem-module$buf-$n", workers => 1,
                        conns => $conns, vmess => [[$_[0], $buf]]);
        }, \&nginx_stop);
    }
    $mem{plain16} = memory_on($ctx, $n, 'plain', sub {
        nginx_start($ctx, name => "mem-plain16-$n", workers => 1,
                    conns => $conns, plain => [[$_[0], 16, $_[1]]]);
    }, \&nginx_stop);
    $mem{v2ray} = memory_on($ctx, $n, undef, sub {
        v2ray_start($ctx, "mem-v2ray-$n", $_[0], [$ctx->{uuid}],
                    $ctx->{v2ray_access_log});
    }, \&v2ray_stop);
    return \%mem;
}

# one server, $start->(port, echo target) and $stop->(server), with an
# echo target of its own; $sec as hold_cmd takes it
sub memory_on {
    my ($ctx, $n, $sec, $start, $stop) = @_;
    my ($echo_pid, $echo) = target($ctx, 'echo');
    my $port = free_port();
    my $srv = $start->($port, $echo);
    my $r = memory_one($ctx, $srv, $port, $echo, $n, $sec);
    $stop->($srv);
    stop($echo_pid);
    return $r;
}

# RSS after 20 warm-up sessions and 2 s after the $n-th is up
sub memory_one {
    my ($ctx, $srv, $port, $echo, $n, $sec) = @_;
    my @hold = hold_cmd($ctx, $port, $echo, $sec);
    hold_warmup($ctx, $srv, @hold) or return undef;
    sleep 1;
    my $before = rss_kib(@{$srv->{pids}});
    my $start = time();
    my ($pid, $held) = hold_open($ctx, $srv, $n, @hold) or return undef;
    my $setup = time() - $start;
    sleep 2;
    my $after = rss_kib(@{$srv->{pids}});
    stop($pid);
    return {before => $before, after => $after, setup => $setup,
            held => $held, per_conn => ($after - $before) * 1024 / $held};
}

1;
