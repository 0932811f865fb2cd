#!/usr/bin/perl
# SpamAssassin's own Received/relay extraction for bench/trace_vs_spamassassin.py.
#
# Reads message file paths (one per line) on stdin; in ONE perl process, for every file:
# Mail::SpamAssassin->parse -> PerMsgStatus->new -> extract_message_metadata, and prints
# one tab-separated line: path, first untrusted relay (ip, helo, by, id, auth), and the
# counts of trusted/untrusted relays. The loop's wall time (init excluded) goes to stderr
# as "SA_LOOP_SECONDS <s> <messages>". No rules are run: this is the metadata step only.
use strict;
use warnings;
use Mail::SpamAssassin;
use Time::HiRes qw(time);

my $sa = Mail::SpamAssassin->new({
    local_tests_only => 1,
    dont_copy_prefs  => 1,
    userprefs_filename => '/dev/null',
    username => 'bench',
    post_config_text => "use_bayes 0\nuse_auto_whitelist 0\n",
});
$sa->init(0);

my @paths = map { chomp; $_ } <STDIN>;
my $start = time();
my $n = 0;
for my $path (@paths) {
    open(my $fh, '<:raw', $path) or do { print "$path\tERROR\n"; next };
    my @lines = <$fh>;
    close $fh;
    my $mail = $sa->parse(\@lines, 1);
    my $pms = Mail::SpamAssassin::PerMsgStatus->new($sa, $mail);
    $pms->extract_message_metadata();
    my $u = $pms->{relays_untrusted} && @{$pms->{relays_untrusted}} ? $pms->{relays_untrusted}->[0] : undef;
    my @f = $u ? map { defined $u->{$_} ? $u->{$_} : '' } qw(ip helo by id auth) : ('', '', '', '', '');
    my $last_t = $pms->{relays_trusted} && @{$pms->{relays_trusted}} ? $pms->{relays_trusted}->[-1] : undef;
    my $tauth = $last_t && $last_t->{auth} ? $last_t->{auth} : '';
    print join("\t", $path, @f, scalar(@{$pms->{relays_trusted} || []}),
               scalar(@{$pms->{relays_untrusted} || []}), $tauth), "\n";
    $pms->finish();
    $mail->finish();
    $n++;
}
printf STDERR "SA_LOOP_SECONDS %.6f %d\n", time() - $start, $n;
