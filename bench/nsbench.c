/*
 * nsbench: the net-snmp C library doing netalert's poll workload, as a reference.
 *
 * One "poll" = one GET of the OIDs given with -g, then a GETBULK walk (max
 * repetitions -r) of each column given with -w. -c sessions run polls in
 * parallel (asynchronous API, one outstanding request per session) until -n
 * polls are done. Prints one JSON line: polls, requests, varbinds, seconds, cpu.
 *
 * Build: cc -O2 -o nsbench nsbench.c -lnetsnmp   (needs libsnmp-dev)
 * Usage: nsbench -p 127.0.0.1:1161 [-v 2c -C public | -v 3 -u USER -A AUTH -X PRIV]
 *                -n 2000 -c 50 -r 25 -g 1.3.6.1.2.1.1.3.0 ... -w 1.3.6.1.2.1.2.2.1.2 ...
 */
#include <net-snmp/net-snmp-config.h>
#include <net-snmp/net-snmp-includes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>

#define MAXO 64

struct oidv { oid name[MAX_OID_LEN]; size_t len; };

static struct oidv gets[MAXO], walks[MAXO];
static int ngets, nwalks, reps = 25, total = 1000, started, done, active;
static long requests, varbinds;

struct job {
    netsnmp_session *ss;
    int step;                     /* 0: GET; 1..nwalks: walking column step-1 */
    oid cursor[MAX_OID_LEN];
    size_t cursor_len;
};

static int send_next(struct job *j);

static int start_poll(struct job *j) {
    if (started >= total) { active--; return 0; }
    started++;
    j->step = 0;
    return send_next(j);
}

static int send_next(struct job *j) {
    netsnmp_pdu *pdu;
    if (j->step == 0) {
        pdu = snmp_pdu_create(SNMP_MSG_GET);
        for (int i = 0; i < ngets; i++) snmp_add_null_var(pdu, gets[i].name, gets[i].len);
    } else {
        pdu = snmp_pdu_create(SNMP_MSG_GETBULK);
        pdu->non_repeaters = 0;
        pdu->max_repetitions = reps;
        snmp_add_null_var(pdu, j->cursor, j->cursor_len);
    }
    requests++;
    if (!snmp_send(j->ss, pdu)) { snmp_free_pdu(pdu); return -1; }
    return 0;
}

static void begin_column(struct job *j, int col) {
    j->step = col + 1;
    memcpy(j->cursor, walks[col].name, walks[col].len * sizeof(oid));
    j->cursor_len = walks[col].len;
}

static int on_response(int op, netsnmp_session *sp, int reqid, netsnmp_pdu *pdu, void *magic) {
    struct job *j = magic;
    (void)sp; (void)reqid;
    if (op != NETSNMP_CALLBACK_OP_RECEIVED_MESSAGE || pdu->errstat != SNMP_ERR_NOERROR) {
        fprintf(stderr, "nsbench: request failed (op %d)\n", op);
        active--;
        return 1;
    }
    int more = 0;
    if (j->step == 0) {
        for (netsnmp_variable_list *v = pdu->variables; v; v = v->next_variable) varbinds++;
        if (nwalks) { begin_column(j, 0); more = 1; }
    } else {
        struct oidv *root = &walks[j->step - 1];
        int inside = 1;
        netsnmp_variable_list *last = NULL;
        for (netsnmp_variable_list *v = pdu->variables; v; v = v->next_variable) {
            if (v->type == SNMP_ENDOFMIBVIEW ||
                snmp_oidtree_compare(root->name, root->len, v->name, v->name_length) != 0) {
                inside = 0;
                break;
            }
            varbinds++;
            last = v;
        }
        if (inside && last) {
            memcpy(j->cursor, last->name, last->name_length * sizeof(oid));
            j->cursor_len = last->name_length;
            more = 1;
        } else if (j->step < nwalks) {
            begin_column(j, j->step);
            more = 1;
        }
    }
    if (more) send_next(j);
    else { done++; start_poll(j); }
    return 1;
}

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static double cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    const char *peer = NULL, *community = "public", *version = "2c", *user = NULL;
    const char *authpass = NULL, *privpass = NULL;
    int conc = 50;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "-p")) peer = v, i++;
        else if (!strcmp(a, "-C")) community = v, i++;
        else if (!strcmp(a, "-v")) version = v, i++;
        else if (!strcmp(a, "-u")) user = v, i++;
        else if (!strcmp(a, "-A")) authpass = v, i++;
        else if (!strcmp(a, "-X")) privpass = v, i++;
        else if (!strcmp(a, "-n")) total = atoi(v), i++;
        else if (!strcmp(a, "-c")) conc = atoi(v), i++;
        else if (!strcmp(a, "-r")) reps = atoi(v), i++;
        else if (!strcmp(a, "-g") || !strcmp(a, "-w")) {
            struct oidv *o = a[1] == 'g' ? &gets[ngets++] : &walks[nwalks++];
            /* numeric only: no MIB files are read */
            o->len = 0;
            for (const char *p = v; *p && o->len < MAX_OID_LEN;) {
                char *end;
                o->name[o->len++] = strtoul(*p == '.' ? p + 1 : p, &end, 10);
                p = end;
            }
            i++;
        }
    }
    if (!peer) { fprintf(stderr, "usage: see nsbench.c\n"); return 2; }
    netsnmp_ds_set_boolean(NETSNMP_DS_LIBRARY_ID, NETSNMP_DS_LIB_DONT_READ_CONFIGS, 1);
    init_snmp("nsbench");
    struct job *jobs = calloc(conc, sizeof *jobs);
    for (int i = 0; i < conc; i++) {
        netsnmp_session s;
        snmp_sess_init(&s);
        s.peername = (char *)peer;
        s.timeout = 2000000;
        s.retries = 1;
        if (!strcmp(version, "3")) {
            s.version = SNMP_VERSION_3;
            s.securityName = (char *)user;
            s.securityNameLen = strlen(user);
            s.securityLevel = SNMP_SEC_LEVEL_AUTHPRIV;
            s.securityAuthProto = usmHMAC192SHA256AuthProtocol;
            s.securityAuthProtoLen = OID_LENGTH(usmHMAC192SHA256AuthProtocol);
            s.securityAuthKeyLen = USM_AUTH_KU_LEN;
            generate_Ku(s.securityAuthProto, s.securityAuthProtoLen, (u_char *)authpass,
                        strlen(authpass), s.securityAuthKey, &s.securityAuthKeyLen);
            s.securityPrivProto = usmAESPrivProtocol;
            s.securityPrivProtoLen = OID_LENGTH(usmAESPrivProtocol);
            s.securityPrivKeyLen = USM_PRIV_KU_LEN;
            generate_Ku(s.securityAuthProto, s.securityAuthProtoLen, (u_char *)privpass,
                        strlen(privpass), s.securityPrivKey, &s.securityPrivKeyLen);
        } else {
            s.version = !strcmp(version, "1") ? SNMP_VERSION_1 : SNMP_VERSION_2c;
            s.community = (u_char *)community;
            s.community_len = strlen(community);
        }
        s.callback = on_response;
        s.callback_magic = &jobs[i];
        jobs[i].ss = snmp_open(&s);
        if (!jobs[i].ss) { snmp_perror("snmp_open"); return 1; }
    }
    double t0 = now(), c0 = cpu();
    active = conc;
    for (int i = 0; i < conc; i++) start_poll(&jobs[i]);
    while (active > 0) {
        int fds = 0, block = 1;
        fd_set fdset;
        struct timeval timeout;
        FD_ZERO(&fdset);
        snmp_select_info(&fds, &fdset, &timeout, &block);
        fds = select(fds, &fdset, NULL, NULL, block ? NULL : &timeout);
        if (fds < 0) { perror("select"); break; }
        if (fds) snmp_read(&fdset); else snmp_timeout();
    }
    double secs = now() - t0, used = cpu() - c0;
    printf("{\"polls\": %d, \"requests\": %ld, \"varbinds\": %ld, \"seconds\": %.6f, \"cpu\": %.6f}\n",
           done, requests, varbinds, secs, used);
    return done == total ? 0 : 1;
}
