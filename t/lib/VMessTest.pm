package VMessTest;

# A small harness of our own for the prove suite: one object per .t file
# owns a temp dir, free 127.0.0.1 ports, an nginx started from a generated
# config with our module, helper daemons (echo targets, DNS stub, v2ray),
# and on finish() checks the error log for alerts, crashes and sanitizer
# reports.
#
# Environment: NGINX_BIN (default /usr/sbin/nginx), VMESS_MODULE (the .so,
# default objs/ngx_stream_vmess_module.so), STREAM_MODULE (loaded first for
# Debian's --with-stream=dynamic nginx), KEEP=1 keeps the temp dir,
# VMESS_VALGRIND=1 runs nginx as one process (master_process off) under
# valgrind's memcheck and fails on any error it reports (make valgrind).

use strict;
use warnings;

use Exporter 'import';
use File::Temp qw/tempdir/;
use FindBin;
use IO::Select;
use IO::Socket::INET;
use POSIX qw/WNOHANG/;
use Test::More;
use Time::HiRes qw/sleep time/;

our @EXPORT_OK = qw/read_file write_file random_uuid/;

my $top = "$FindBin::Bin/..";
$top = "$FindBin::Bin/../.." unless -f "$top/config";

sub top { return $top }

sub new {
    my ($class, %opts) = @_;
    my $self = bless {
        dir      => tempdir('vmess-test-XXXXXX', TMPDIR => 1,
                            CLEANUP => !$ENV{KEEP}),
        nginx    => $ENV{NGINX_BIN} || '/usr/sbin/nginx',
        module   => $ENV{VMESS_MODULE}
                    || "$top/objs/ngx_stream_vmess_module.so",
        client   => "$top/objs/vmess-client",
        ports    => {},
        daemons  => [],
        owner    => $$,
        valgrind => $ENV{VMESS_VALGRIND} ? 1 : 0,
        %opts,
    }, $class;

    my $stream = $ENV{STREAM_MODULE};
    $stream = '/usr/lib/nginx/modules/ngx_stream_module.so'
        if !defined $stream && $self->{nginx} eq '/usr/sbin/nginx';
    $self->{stream} = $stream if $stream && -f $stream;

    # workers run as nobody: they must read the dir (and the user file)
    chmod 0755, $self->{dir};
    # an nginx built from source defaults http logs to PREFIX/logs/
    mkdir "$self->{dir}/logs";
    diag("test dir $self->{dir}") if $ENV{KEEP};

    return $self;
}

sub dir { return $_[0]{dir} }

# nginx runs as one process (under valgrind): no workers, and a quit does
# not wait for open sessions
sub single_process { return $_[0]{valgrind} }

# nginx built with AddressSanitizer: its allocator keeps freed memory in a
# quarantine (make asan caps it at 16 MiB), which RSS checks must allow for
sub sanitized {
    my ($self) = @_;
    return $self->{sanitized} //= (`ldd $self->{nginx} 2>/dev/null`
                                   =~ /libasan/ ? 1 : 0);
}

# a free port, the same one for the same name within this test
sub port {
    my ($self, $name) = @_;
    # the probe socket is closed at once, so the kernel may hand the same
    # port out again: a test's ports must differ or nginx refuses its
    # config ("duplicate address and port pair")
    return $self->{ports}{$name} //= do {
        my %taken = map { $_ => 1 } grep { defined } values %{$self->{ports}};
        my $port;
        do {
            my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0',
                                          Listen => 1) or die "port: $!";
            $port = $s->sockport();
        } while ($taken{$port});
        $port;
    };
}

sub globals {
    my ($self) = @_;
    my $load = '';
    $load .= "load_module $self->{stream};\n" if $self->{stream};
    $load .= "load_module $self->{module};\n";
    $load .= "master_process off;\n" if $self->{valgrind};
    return $load . "daemon off;\n"
        . "error_log $self->{dir}/error.log debug;\n"
        . "pid $self->{dir}/nginx.pid;\n";
}

# writes nginx.conf: %%GLOBALS%%, %%TESTDIR%%, %%PORT_name%% are replaced
sub write_conf {
    my ($self, $conf, $name) = @_;
    $name //= 'nginx.conf';
    $conf =~ s/%%GLOBALS%%/$self->globals()/ge;
    $conf =~ s/%%TESTDIR%%/$self->{dir}/g;
    $conf =~ s/%%PORT_(\w+)%%/$self->port($1)/ge;
    write_file("$self->{dir}/$name", $conf);
    return $self;
}

# nginx -t: returns (exit status, output)
sub test_conf {
    my ($self, $name) = @_;
    $name //= 'nginx.conf';
    my $out = `$self->{nginx} -p $self->{dir}/ -c $name -t 2>&1`;
    return ($? >> 8, $out);
}

sub run {
    my ($self) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDERR, '>>', "$self->{dir}/stderr.log";
        exec($self->valgrind_command(), $self->{nginx}, '-p',
             "$self->{dir}/", '-c', 'nginx.conf')
            or exit 1;
    }
    $self->{nginx_pid} = $pid;

    # the master writes its pid after opening the listening sockets, so no
    # probe connection (which would be a session in the logs) is needed
    for (1 .. ($self->{valgrind} ? 1200 : 100)) {
        last if -s "$self->{dir}/nginx.pid";
        if (waitpid($pid, WNOHANG) == $pid) {
            delete $self->{nginx_pid};
            diag(read_file("$self->{dir}/error.log")
                 . read_file("$self->{dir}/stderr.log"));
            BAIL_OUT('nginx exited at start');
        }
        sleep 0.05;
    }
    return $self;
}

sub reload {
    my ($self) = @_;
    kill 'HUP', $self->{nginx_pid};
    return $self;
}

sub stop {
    my ($self) = @_;
    my $pid = delete $self->{nginx_pid} or return;
    kill 'QUIT', $pid;
    for (1 .. ($self->{valgrind} ? 1200 : 100)) {
        return if waitpid($pid, WNOHANG) == $pid;
        sleep 0.05;
    }
    kill 'TERM', $pid;
    waitpid($pid, 0);
}

sub port_open {
    my ($p) = @_;
    return IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p") ? 1 : 0;
}

# pids of the running nginx's workers
sub workers {
    my ($self) = @_;
    my $master = $self->{nginx_pid} or return ();
    my @w;
    for my $st (glob '/proc/[0-9]*/stat') {
        my $line = read_file($st) or next;
        my ($pid, $ppid) = $line =~ /^(\d+) \(.*\) \S+ (\d+)/ or next;
        push @w, $pid if $ppid == $master;
    }
    return @w;
}

# summed VmRSS of the workers, KiB
sub workers_rss {
    my ($self) = @_;
    my $sum = 0;
    for my $pid ($self->workers()) {
        $sum += $1 if (read_file("/proc/$pid/status") // '')
                      =~ /VmRSS:\s+(\d+)/;
    }
    return $sum;
}

# starts a command that prints "listening PORT" when ready; returns PORT
sub daemon {
    my ($self, @cmd) = @_;
    pipe(my $r, my $w) or die "pipe: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        close $r;
        open STDOUT, '>&', $w or exit 1;
        open STDERR, '>>', "$self->{dir}/daemons.log";
        exec(@cmd) or exit 1;
    }
    close $w;
    push @{$self->{daemons}}, $pid;

    my $line = '';
    local $SIG{ALRM} = sub { die "daemon @cmd did not start\n" };
    alarm 10;
    $line = <$r> // '';
    alarm 0;
    $self->{daemon_pipes}{$pid} = $r;
    my ($port) = $line =~ /listening (\d+)/
        or die "daemon @cmd said: $line";
    return $port;
}

# a target of objs/vmess-client: echo, sink, source, udp-echo
sub target {
    my ($self, $kind) = @_;
    return $self->daemon($self->{client}, "serve-$kind", '127.0.0.1:0');
}

# runs objs/vmess-client; returns (exit status, output).  Under valgrind
# nginx runs some 10-50 times slower: the client's default 10 s wait for
# progress becomes 100 s (a --timeout of the test's own still wins).
sub client {
    my ($self, @args) = @_;
    unshift @args, '--timeout', 100 if $self->{valgrind};
    my $cmd = join ' ', map { quotemeta } $self->{client}, @args;
    my $out = `$cmd 2>&1`;
    return ($? >> 8, $out);
}

# a DNS stub answering A and AAAA queries from a name => address map; an
# address may be a list (in the order answered), IPv6 ones go in AAAA
sub dns {
    my ($self, %names) = @_;
    require Net::DNS::Nameserver;
    my $port = $self->port('dns');
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        my $ns = Net::DNS::Nameserver->new(
            LocalAddr => '127.0.0.1', LocalPort => $port, Proto => 'udp',
            ReplyHandler => sub {
                my ($qname, $qclass, $qtype) = @_;
                my $addr = $names{lc $qname};
                return ('NXDOMAIN') unless defined $addr;
                my @rr = map { Net::DNS::RR->new("$qname 1 $qtype $_") }
                    grep { /:/ ? $qtype eq 'AAAA' : $qtype eq 'A' }
                    ref $addr ? @$addr : ($addr);
                return ('NOERROR', \@rr, [], [], {aa => 1});
            },
            Verbose => 0) or exit 1;
        $ns->main_loop();
        exit 0;
    }
    push @{$self->{daemons}}, $pid;
    sleep 0.3;
    return $port;
}

# a v2ray 4.34 client: dokodemo-door on a free port -> vmess to our server.
# %o: server (port), uuid, security, target_host, target_port, alter_id,
# network (tcp|udp), mux (concurrency or 0), name (config file tag),
# stream_settings (a JSON object for the outbound's "streamSettings")
sub v2ray_client {
    my ($self, %o) = @_;
    my $name = $o{name} // 'v2ray';
    my $port = $self->port($name);
    my $net = $o{network} // 'tcp';
    my $mux = $o{mux}
        ? qq{, "mux": {"enabled": true, "concurrency": $o{mux}}} : '';
    my $alter = $o{alter_id} // 0;
    my $ss = $o{stream_settings}
        ? qq{, "streamSettings": $o{stream_settings}} : '';
    write_file("$self->{dir}/$name.json", <<"JSON");
{
  "log": {"loglevel": "warning"},
  "inbounds": [{"listen": "127.0.0.1", "port": $port,
    "protocol": "dokodemo-door",
    "settings": {"address": "$o{target_host}", "port": $o{target_port},
                 "network": "$net"}}],
  "outbounds": [{"protocol": "vmess",
    "settings": {"vnext": [{"address": "127.0.0.1", "port": $o{server},
      "users": [{"id": "$o{uuid}", "alterId": $alter,
                 "security": "$o{security}"}]}]}$mux$ss}]
}
JSON
    $self->v2ray($name, $net eq 'tcp' ? $port : undef,
                 $o{legacy} ? (V2RAY_VMESS_AEAD_DISABLED => 'true') : ());
    return $port;
}

# starts v2ray with NAME.json of the test dir, with %env added to its
# environment; waits until it listens on PORT (when given)
sub v2ray {
    my ($self, $name, $port, %env) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        open STDOUT, '>>', "$self->{dir}/$name.log";
        open STDERR, '>&', \*STDOUT;
        @ENV{keys %env} = values %env;
        exec('v2ray', '-config', "$self->{dir}/$name.json") or exit 1;
    }
    push @{$self->{daemons}}, $pid;
    for (1 .. 100) {
        last if !defined $port || port_open($port);
        sleep 0.05;
    }
    return $self;
}

# a CA (ca.crt) and a server certificate for NAME signed by it
# (server.crt, server.key) in DIR, made with the openssl command
sub make_cert {
    my ($dir, $name) = @_;
    system("cd $dir && openssl req -x509 -newkey rsa:2048 -nodes -days 2"
           . " -subj /CN=test-ca -keyout ca.key -out ca.crt 2>/dev/null"
           . " && openssl req -newkey rsa:2048 -nodes -subj /CN=$name"
           . " -keyout server.key -out server.csr 2>/dev/null"
           . " && printf 'subjectAltName=DNS:$name' > san.ext"
           . " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
           . " -CAcreateserial -days 2 -extfile san.ext -out server.crt"
           . " 2>/dev/null") == 0 or die "openssl failed";
    chmod 0644, "$dir/server.key";
}

sub error_log { return read_file("$_[0]{dir}/error.log") }

# a target that records what each connection sent, one line per connection
# ("<bytes> <first 64 bytes hex>") in FILE, and answers nothing; returns
# its port
sub recorder {
    my ($self, $file) = @_;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 64,
                                   ReuseAddr => 1) or die "listen: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $ls->accept()) {
            next if fork();
            my ($all, $buf) = ('');
            while ($c->sysread($buf, 65536)) {
                $all .= $buf;
            }
            open my $fh, '>>', $file or exit 1;
            printf $fh "%d %s\n", length $all,
                unpack('H*', substr($all, 0, 64));
            close $fh;
            exit 0;
        }
        exit 0;
    }
    push @{$self->{daemons}}, $pid;
    return $ls->sockport();
}

# sends bytes to 127.0.0.1:port and reads what comes back for up to
# timeout seconds (default 3): returns (the bytes, 1 if the server closed)
sub exchange {
    my ($self, $port, $bytes, $timeout) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
        or die "connect: $!";
    $s->syswrite($bytes) if length $bytes;
    my ($got, $buf, $closed) = ('', '', 0);
    my $sel = IO::Select->new($s);
    my $end = time() + ($timeout // 3);
    while (time() < $end) {
        last unless $sel->can_read($end - time());
        my $n = $s->sysread($buf, 65536);
        if (!$n) {
            $closed = 1;
            last;
        }
        $got .= $buf;
    }
    return ($got, $closed);
}

# a plain TCP port whose connections go on over TLS (SNI name, no
# certificate check) to 127.0.0.1:port, for clients without TLS; returns
# the plain port
sub tls_bridge {
    my ($self, $port, $name) = @_;
    require IO::Socket::SSL;
    my $ls = IO::Socket::INET->new(LocalAddr => '127.0.0.1:0', Listen => 64,
                                   ReuseAddr => 1) or die "listen: $!";
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        $SIG{CHLD} = 'IGNORE';
        while (my $c = $ls->accept()) {
            next if fork();
            my $u = IO::Socket::SSL->new(
                PeerAddr => "127.0.0.1:$port", SSL_hostname => $name,
                SSL_verify_mode => IO::Socket::SSL::SSL_VERIFY_NONE())
                or exit 1;
            pump($c, $u);
            exit 0;
        }
        exit 0;
    }
    push @{$self->{daemons}}, $pid;
    return $ls->sockport();
}

# bytes both ways until either side closes; reads of 16 KiB take whole
# TLS records, so nothing waits inside IO::Socket::SSL unseen by select
sub pump {
    my ($a, $b) = @_;
    my $sel = IO::Select->new($a, $b);
    my $buf;
    while (my @ready = $sel->can_read()) {
        for my $from (@ready) {
            my $to = $from == $a ? $b : $a;
            do {
                my $n = $from->sysread($buf, 16384);
                return unless $n;
                my $off = 0;
                while ($off < $n) {
                    my $k = $to->syswrite($buf, $n - $off, $off);
                    return unless $k;
                    $off += $k;
                }
            } while ($from->can('pending') && $from->pending());
        }
    }
}

# plain TCP: sends n random bytes to port, reads them back; returns 1 when
# all came back equal (sha256 compared), else a diagnostic string
sub plain_echo {
    my ($self, $port, $n, $timeout) = @_;
    require Digest::SHA;
    my $data = '';
    $data .= pack('N*', map { int rand 4294967296 } 1 .. 16384)
        while length $data < $n;
    $data = substr($data, 0, $n);

    my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port")
        or return "connect: $!";
    my $w = fork() // die "fork: $!";
    if ($w == 0) {
        my $off = 0;
        while ($off < $n) {
            my $k = $s->syswrite($data, 65536, $off);
            exit 1 unless defined $k;
            $off += $k;
        }
        exit 0;
    }

    my ($got, $buf) = ('');
    my $sel = IO::Select->new($s);
    my $end = time() + ($timeout // 60);
    while (length $got < $n && time() < $end) {
        last unless $sel->can_read($end - time());
        my $k = $s->sysread($buf, 262144);
        last unless $k;
        $got .= $buf;
    }
    waitpid($w, 0);
    close $s;
    return 1 if length $got == $n
        && Digest::SHA::sha256_hex($got) eq Digest::SHA::sha256_hex($data);
    return sprintf 'sent %d bytes, got %d back%s', $n, length $got,
        length $got == $n ? ' (different bytes)' : '';
}

# waits until the error log matches re (or timeout); returns the match
sub wait_log {
    my ($self, $re, $timeout) = @_;
    my $end = time() + ($timeout // 5);
    while (time() < $end) {
        my $log = $self->error_log();
        return $1 // $& if $log =~ $re;
        sleep 0.05;
    }
    return undef;
}

sub kill_daemons {
    my ($self) = @_;
    kill 'TERM', @{$self->{daemons}};
    waitpid($_, 0) for @{$self->{daemons}};
    $self->{daemons} = [];
}

# memcheck's command line, or nothing; its reports go to valgrind-PID.log
sub valgrind_command {
    my ($self) = @_;
    return () unless $self->{valgrind};
    return ('valgrind', '--tool=memcheck', '--quiet',
            '--error-exitcode=99', '--leak-check=full',
            '--errors-for-leak-kinds=definite', '--show-leak-kinds=definite',
            "--suppressions=$top/t/valgrind.supp",
            "--log-file=$self->{dir}/valgrind-%p.log");
}

# stops everything and checks the logs; call once, before done_testing
sub finish {
    my ($self) = @_;
    $self->stop();
    $self->kill_daemons();
    if ($self->{valgrind}) {
        my @reports = grep { -s $_ } glob "$self->{dir}/valgrind-*.log";
        ok(!@reports, 'valgrind: no error reported')
            or diag(join "\n", map { read_file($_) } @reports);
    }
    my $log = $self->error_log();
    my @bad = grep {
        /\[(alert|crit|emerg)\]|Sanitizer|runtime error|exited on signal/
        && !/ngx_string\.c:\d+:\d+: runtime error: null pointer passed/
        # nginx 1.22's own A record parse ((buf[i] << 24) on an int) for
        # an address of 128.0.0.0 or more, in its resolver, not ours
        && !/ngx_resolver\.c:\d+:\d+: runtime error: left shift of \d+ by 24/
    } split /\n/, $log;
    ok(!@bad, 'no alerts, crashes or sanitizer reports in error.log')
        or diag(join "\n", @bad[0 .. ($#bad > 20 ? 20 : $#bad)]);
}

sub DESTROY {
    my ($self) = @_;
    # forked daemons inherit the object: only its owner stops things
    return if $$ != $self->{owner};
    local $?;
    $self->stop();
    $self->kill_daemons() if @{$self->{daemons} || []};
}

sub read_file {
    my ($name) = @_;
    open my $fh, '<', $name or return '';
    local $/;
    return <$fh>;
}

sub write_file {
    my ($name, $content) = @_;
    open my $fh, '>', $name or die "$name: $!";
    print $fh $content;
    close $fh;
}

sub random_uuid {
    my @b = map { int rand 256 } 1 .. 16;
    $b[6] = ($b[6] & 0x0f) | 0x40;
    $b[8] = ($b[8] & 0x3f) | 0x80;
    my $h = join '', map { sprintf '%02x', $_ } @b;
    return join '-', substr($h, 0, 8), substr($h, 8, 4), substr($h, 12, 4),
        substr($h, 16, 4), substr($h, 20);
}

1;
