# 4. profile: perf record of the nginx worker during an upload and a
# download, with aes-128-gcm (loaded by vmess-client, and by the real v2ray
# client), and with security none next to plain nginx.
package VmessBench::Profile;

use strict;
use warnings;

use Exporter 'import';
use Time::HiRes qw/sleep/;

use VmessBench::Load qw/transfer_cmd/;
use VmessBench::Proc qw/spawn stop run_cmd free_port placement pin/;
use VmessBench::Real qw/v2ray_client/;
use VmessBench::Servers qw/nginx_start nginx_stop transfer_targets/;
use VmessBench::Util qw/progress note/;

our @EXPORT_OK = qw/profile/;

# {symbols => {dir => [[percent, object, symbol], ...]}, dsos => {dir =>
# [[percent, object], ...]}, real => {symbols, dsos} the same with the
# v2ray client, none => {module|plain "|" dir => the same by object}};
# undef without perf
sub profile {
    my ($ctx) = @_;
    if (system('perf --version >/dev/null 2>&1') != 0) {
        note('profile skipped: no perf');
        return undef;
    }
    my ($target, @target_pids) = transfer_targets($ctx);
    my %p = profile_gcm($ctx, $target);
    $p{real} = profile_real($ctx, $target, @target_pids);
    $p{none} = profile_none($ctx, $target, @target_pids);
    stop($_) for @target_pids;
    return \%p;
}

# aes-128-gcm, 128k buffers, nothing pinned
sub profile_gcm {
    my ($ctx, $target) = @_;
    progress('profile: perf record on the worker, aes-128-gcm, 128k buffers');
    my $port = free_port();
    my $ours = nginx_start($ctx, name => 'profile', workers => 1,
                           vmess => [[$port, 128]]);
    my %p;
    for my $dirn (qw/upload download/) {
        my $data = "$ctx->{dir}/perf-$dirn.data";
        perf_run($ctx, $ours, $data, transfer_cmd($ctx, $port,
            $target->{$dirn}, 'aes-128-gcm', $dirn));
        $p{symbols}{$dirn} = perf_symbols($data);
        $p{dsos}{$dirn} = perf_dsos($data);
    }
    nginx_stop($ours);
    return %p;
}

# aes-128-gcm, 16k buffers (the default), the real v2ray client as the
# load (its chunks of at most 2048 bytes), pinned as the bulk runs with
# one connection
sub profile_real {
    my ($ctx, $target, @target_pids) = @_;
    progress('profile: the v2ray client as the load, aes-128-gcm, 16k');
    my $place = placement();
    pin($place->{load_cpus}, @target_pids);
    my $port = free_port();
    my $ours = nginx_start($ctx, name => 'profile-real', workers => 1,
                           vmess => [[$port, 16]]);
    my $client = v2ray_client($ctx, 'profile-client', $target,
                              [['module16', $ours, $port]]);
    pin('0', @{$ours->{pids}});
    pin($place->{load_cpus}, $client->{pid});
    my %p;
    for my $dirn (qw/upload download/) {
        my $data = "$ctx->{dir}/perf-real-$dirn.data";
        perf_run($ctx, $ours, $data, load_cpus(), transfer_cmd($ctx,
            $client->{port}{module16}{$dirn}, undef, undef, $dirn));
        $p{symbols}{$dirn} = perf_symbols($data);
        $p{dsos}{$dirn} = perf_dsos($data);
    }
    stop($client->{pid});
    nginx_stop($ours);
    return \%p;
}

# security none: the module's own cost next to plain nginx's, pinned as
# the bulk runs with one connection
sub profile_none {
    my ($ctx, $target, @target_pids) = @_;
    progress('profile: security none, 16k buffers, module and plain nginx');
    my $place = placement();
    pin($place->{load_cpus}, @target_pids);
    my $vport = free_port();
    my %pp = (upload => free_port(), download => free_port());
    my $ours = nginx_start($ctx, name => 'profile-none', workers => 1,
                           vmess => [[$vport, 16]]);
    my $plain = nginx_start($ctx, name => 'profile-plain', workers => 1,
        plain => [map { [$pp{$_}, 16, $target->{$_}] } qw/upload download/]);
    pin('0', @{$ours->{pids}}, @{$plain->{pids}});
    my $dir = $ctx->{dir};
    my %none;
    for my $dirn (qw/upload download/) {
        my @load = load_cpus();
        perf_run($ctx, $ours, "$dir/perf-none-$dirn.data", @load,
            transfer_cmd($ctx, $vport, $target->{$dirn}, 'none', $dirn));
        $none{"module|$dirn"} = perf_dsos("$dir/perf-none-$dirn.data");
        perf_run($ctx, $plain, "$dir/perf-plain-$dirn.data", @load,
            transfer_cmd($ctx, $pp{$dirn}, undef, undef, $dirn));
        $none{"plain|$dirn"} = perf_dsos("$dir/perf-plain-$dirn.data");
    }
    nginx_stop($ours);
    nginx_stop($plain);
    return \%none;
}

# the load's command prefix: on the load CPUs when pinned
sub load_cpus {
    my $place = placement();
    return $place->{pinned} ? ('taskset', '-c', $place->{load_cpus}) : ();
}

# perf record of a server's first worker while the client runs
sub perf_run {
    my ($ctx, $srv, $data, @client) = @_;
    my $perf = spawn('perf', "$data.log", 'perf', 'record', '-F', 1999,
                     '-p', $srv->{pids}[0], '-o', $data);
    sleep 0.5;
    my ($rc, $out) = run_cmd($ctx->{run_limit}, @client);
    stop($perf, 'INT');
    note("profile $data: client failed: $out") if $rc ne '0';
}

# the top 15 symbols of a perf.data: [[percent, object, symbol], ...]
sub perf_symbols {
    my ($data) = @_;
    my @top;
    for (perf_report($data, 'dso,sym')) {
        my ($pct, $dso, $sym) =
            /^\s*([\d.]+)%\s+(\S+)\s+\[\S\]\s+(.*?)\s*$/ or next;
        # stripped code (libcrypto's assembler): only in the dso table
        next if $sym =~ /^0x[0-9a-f]+$/;
        push @top, [$pct, $dso, $sym] if @top < 15;
    }
    return \@top;
}

# the samples of a perf.data by object: [[percent, object], ...]
sub perf_dsos {
    my ($data) = @_;
    my @dso;
    for (perf_report($data, 'dso')) {
        my ($pct, $dso) = /^\s*([\d.]+)%\s+(\S+)/ or next;
        push @dso, [$pct, $dso] if @dso < 8;
    }
    return \@dso;
}

# the lines of perf report on a perf.data, sorted by $sort
sub perf_report {
    my ($data, $sort) = @_;
    my $cmd = "perf report -i $data --stdio --no-children -q --sort $sort "
        . "2>/dev/null";
    return split /\n/, `$cmd`;
}

1;
