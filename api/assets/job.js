// The customer's job page: polls GET /v1/jobs/{id} with the access token
// from the page's address while the job can still change, and updates the
// page in place. Without this script the page works too (it reloads itself).
// Keep the texts in step with api/page.go.
(function () {
  'use strict';

  var POLL_MS = 2000;

  var STEPS = ['awaiting_payment', 'pending', 'processing', 'completed'];
  var STEP_LABELS = ['Awaiting payment', 'Paid', 'Processing', 'Ready'];
  var FAILED_STEP_LABELS = ['Not paid', '', 'Processing failed', ''];

  var HEADLINES = {
    awaiting_payment: ['Waiting for your payment', 'Complete the payment to start upscaling.'],
    pending: ['Payment received', 'Your image is about to be upscaled.'],
    processing: ['Upscaling your image', 'This usually takes a minute or two.'],
    completed: ['Your image is ready', 'Download it before the link expires.'],
    failed: ['Something went wrong', 'We could not upscale your image.'],
    abandoned: ['This order was not paid', 'The payment window has closed. Nothing was charged.']
  };

  // A bank debit being processed (payment_status "processing").
  var PROCESSING_HEADLINE = ['Your payment is being processed',
    'Your bank is confirming the payment, which can take a few business days. We will email you when it is confirmed, and then upscale your image.'];

  var LABELS = {
    awaiting_payment: 'Awaiting payment',
    pending: 'Paid',
    processing: 'Processing',
    completed: 'Completed',
    failed: 'Failed',
    abandoned: 'Not paid'
  };

  var root = document.getElementById('job');
  var token = new URLSearchParams(window.location.search).get('token');
  if (!root || !token || !window.fetch) {
    return;
  }
  var jobID = root.getAttribute('data-job-id');

  function $(id) {
    return document.getElementById(id);
  }

  function show(el, visible) {
    if (el) {
      el.hidden = !visible;
    }
  }

  // "USD 3.84", as the server writes it.
  function money(cents, currency) {
    var c = Math.abs(cents);
    var frac = String(c % 100);
    return (cents < 0 ? '-' : '') + String(currency || '').toUpperCase() + ' ' +
      Math.floor(c / 100) + '.' + (frac.length < 2 ? '0' + frac : frac);
  }

  // A time in the reader's own zone, with the zone's name.
  function localTime(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) {
      return null;
    }
    try {
      return d.toLocaleString(undefined, {
        weekday: 'short', day: 'numeric', month: 'short', year: 'numeric',
        hour: '2-digit', minute: '2-digit', timeZoneName: 'short'
      });
    } catch (e) {
      return null;
    }
  }

  function timeElement(iso) {
    var t = document.createElement('time');
    t.dateTime = iso;
    t.textContent = localTime(iso) || iso;
    return t;
  }

  function localizeTimes() {
    var times = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < times.length; i++) {
      var s = localTime(times[i].dateTime);
      if (s) {
        times[i].textContent = s;
      }
    }
  }

  // setText replaces el's content with the strings and nodes given.
  function setText(el) {
    while (el.firstChild) {
      el.removeChild(el.firstChild);
    }
    for (var i = 1; i < arguments.length; i++) {
      var part = arguments[i];
      el.appendChild(typeof part === 'string' ? document.createTextNode(part) : part);
    }
  }

  function refundPending(v) {
    return v.status === 'failed' && !!v.paid_at && !v.refund;
  }

  function watching(v) {
    return v.status !== 'completed' && v.status !== 'failed' && v.status !== 'abandoned' || refundPending(v);
  }

  // Where the job stands on the progress list; see steps in api/page.go.
  function stepStates(v) {
    var at = STEPS.length;
    var failed = false;
    if (v.status === 'failed') {
      at = v.paid_at ? 2 : 0;
      failed = true;
    } else if (v.status === 'abandoned') {
      at = 0;
      failed = true;
    } else if (v.status !== 'completed') {
      at = STEPS.indexOf(v.status);
    }
    return STEPS.map(function (_, i) {
      if (i < at) {
        return 'done';
      }
      if (i === at) {
        return failed ? 'failed' : 'current';
      }
      return 'todo';
    });
  }

  function render(v) {
    var texts = HEADLINES[v.status] || [v.status, ''];
    if (v.status === 'awaiting_payment' && v.payment_status === 'processing') {
      texts = PROCESSING_HEADLINE;
    }
    if ($('headline').textContent !== texts[0]) {
      $('headline').textContent = texts[0];
      document.title = texts[0];
    }
    $('detail').textContent = texts[1];

    var status = $('status');
    status.textContent = LABELS[v.status] || v.status;
    status.setAttribute('data-status', v.status);

    var states = stepStates(v);
    var items = document.querySelectorAll('#steps .step');
    for (var i = 0; i < items.length && i < states.length; i++) {
      items[i].className = 'step ' + states[i];
      var label = items[i].querySelector('.label');
      if (label) {
        label.textContent = states[i] === 'failed' ? FAILED_STEP_LABELS[i] : STEP_LABELS[i];
      }
      if (states[i] === 'current') {
        items[i].setAttribute('aria-current', 'step');
      } else {
        items[i].removeAttribute('aria-current');
      }
    }

    show($('pay-wrap'), !!v.checkout_url);
    show($('pay-dev-form'), v.status === 'awaiting_payment' && v.payment_status !== 'processing');

    var dl = v.download;
    var link = $('download');
    if (dl && dl.url && !dl.expired) {
      link.href = dl.url;
      show(link, true);
    } else {
      link.removeAttribute('href');
      show(link, false);
    }
    var expires = $('expires');
    if (dl) {
      setText(expires, dl.url && !dl.expired ? 'The link expires on ' : 'The download link expired on ',
        timeElement(dl.expires_at), '.');
    }
    show(expires, !!dl);

    var refund = $('refund');
    if (v.refund) {
      var amount = document.createElement('span');
      amount.className = 'amount';
      amount.textContent = money(v.refund.amount_cents, v.refund.currency);
      setText(refund, 'Your payment of ', amount, ' was refunded on ', timeElement(v.refund.refunded_at),
        '. It reaches your card within a few business days.');
    }
    show(refund, !!v.refund);
    show($('refund-pending'), refundPending(v));
  }

  var timer = null;
  var busy = false;
  var MAX_DELAY = 2147483647; // setTimeout's limit (24.8 days)

  // msUntil is how long until the time iso, plus a second; null if unknown.
  function msUntil(iso) {
    var at = Date.parse(iso);
    if (isNaN(at)) {
      return null;
    }
    return Math.min(Math.max(at - Date.now(), 0) + 1000, MAX_DELAY);
  }

  // A live download link is looked at again once it expires.
  function linkExpiry(v) {
    return v.download && v.download.url && !v.download.expired ? msUntil(v.download.expires_at) : null;
  }

  function schedule(ms) {
    if (timer === null) {
      timer = window.setTimeout(poll, ms);
    }
  }

  function pollNow() {
    if (timer !== null) {
      window.clearTimeout(timer);
      timer = null;
    }
    poll();
  }

  function poll() {
    timer = null;
    if (busy) {
      return;
    }
    busy = true;
    window.fetch('/v1/jobs/' + encodeURIComponent(jobID), {
      headers: { 'Authorization': 'Bearer ' + token, 'Accept': 'application/json' },
      cache: 'no-store',
      credentials: 'omit'
    }).then(function (resp) {
      if (resp.status === 404) {
        return 'stop'; // the link is wrong: nothing will change
      }
      if (!resp.ok) {
        throw new Error('HTTP ' + resp.status);
      }
      return resp.json().then(function (v) {
        render(v);
        return watching(v) ? POLL_MS : linkExpiry(v);
      });
    }).then(function (next) {
      busy = false;
      show($('offline'), false);
      if (typeof next === 'number') {
        schedule(next);
      }
    }, function () {
      busy = false;
      show($('offline'), true);
      schedule(POLL_MS);
    });
  }

  // The simulated payment (development only): post it without leaving the page.
  var payForm = $('pay-dev-form');
  if (payForm) {
    payForm.addEventListener('submit', function (ev) {
      ev.preventDefault();
      var button = $('pay-dev');
      button.disabled = true;
      button.textContent = 'Paying…';
      window.fetch(payForm.action, {
        method: 'POST',
        headers: { 'Accept': 'application/json' },
        cache: 'no-store',
        credentials: 'omit'
      }).then(function (resp) {
        if (!resp.ok) {
          throw new Error('HTTP ' + resp.status);
        }
        button.textContent = 'Payment sent';
        pollNow();
      }).catch(function () {
        button.disabled = false;
        button.textContent = 'Pay (simulated): failed, try again';
      });
    });
  }

  localizeTimes();
  if (root.getAttribute('data-watch') === 'true') {
    schedule(POLL_MS);
  } else if (!$('download').hidden) {
    var expiresAt = document.querySelector('#expires time');
    var wait = expiresAt ? msUntil(expiresAt.dateTime) : null;
    if (wait !== null) {
      schedule(wait);
    }
  }
}());
