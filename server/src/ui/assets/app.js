// Shows every <time datetime> in the viewer's time zone; the UTC time stays on hover (title).
// Pages work without it: they show UTC then.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (!isNaN(d.getTime())) {
      el.textContent = d.toLocaleString();
    }
  });
});
