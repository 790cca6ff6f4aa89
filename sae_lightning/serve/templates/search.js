// Sliders steer the query: each moved slider becomes clamp=FEATURE=VALUE (sae-search --clamp's
// syntax), the nearest-texts fragment is fetched from the server (escaped there) and the URL is
// updated, so the steered query can be linked and reopened.
(function(){
  var box=document.getElementById('results');if(!box)return;
  var sliders=[].slice.call(document.querySelectorAll('input.slider')),seq=0;
  function clamps(){var p=new URLSearchParams();p.set('q',box.dataset.q);
    sliders.forEach(function(s){if(Math.abs(parseFloat(s.value)-parseFloat(s.dataset.act))>1e-9)
      p.append('clamp',s.dataset.feature+'='+parseFloat(s.value).toPrecision(4));});return p;}
  function update(){var p=clamps(),mine=++seq;
    history.replaceState(null,'',location.pathname+'?'+p.toString());
    fetch(location.pathname.replace(/\/search$/,'/search/nearest')+'?'+p.toString())
      .then(function(r){return r.text().then(function(t){return [r.ok,t];});})
      .then(function(x){if(mine!==seq)return;
        if(x[0]){box.innerHTML=x[1];box.dataset.state=String(mine);}else{box.textContent=x[1];}});}
  sliders.forEach(function(s){
    s.addEventListener('input',function(){s.nextElementSibling.textContent=parseFloat(s.value).toPrecision(3);});
    s.addEventListener('change',update);});
})();
